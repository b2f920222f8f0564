// Internal name of the error convention: the definitions are public (extensions see the same
// error values), so they live in include/troupe/error.h and this header only forwards to it.
#pragma once

#include "troupe/error.h"
