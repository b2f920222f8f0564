// Internal name of the generation request and event values: they are part of the public extension
// API, so they live in include/troupe/generation.h; this header forwards.
#pragma once

#include "troupe/generation.h"
