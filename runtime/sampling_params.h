// Internal name of the sampling parameters: the struct is part of the public extension API (a
// filter may rewrite it), so it lives in include/troupe/sampling_params.h; this header forwards.
#pragma once

#include "troupe/sampling_params.h"
