// The sampling parameters as config/ and the layers above name them. The struct is part of the
// public extension API (a filter may rewrite it), so its one definition lives in
// include/troupe/sampling_params.h, the dependency-free floor beneath config/; this header forwards.
#pragma once

#include "troupe/sampling_params.h"
