// System memory as the CPU device sees it (the CPU executor's "device memory" for the plan), and
// the page size the CPU weights live on.
#pragma once

#include <cstddef>
#include <cstdint>

#include "config/memory_plan.h"
#include "runtime/model_config.h"
#include "runtime/model_weights.h"

namespace troupe {

// MemTotal and MemAvailable from /proc/meminfo.
device_memory host_device_memory();

// The numbers of a model the planner needs.
plan_model_shape to_plan_shape(const model_config& cfg);

// "auto" -> float32 on cpu, bfloat16 on cuda; otherwise the name itself.
std::string resolve_dtype(const std::string& dtype, const std::string& device);

// Process resident set size in bytes (from /proc/self/statm), for "measured after the first request".
uint64_t process_rss_bytes();

// Asks the kernel to back [data, data + bytes), widened to whole 2 MiB pages, with transparent huge
// pages (MADV_HUGEPAGE) and to collapse what is already resident into them now (MADV_COLLAPSE).
// Decode streams every weight once per step: with 4 KiB pages the hardware prefetchers stop at
// every page boundary and each page costs a TLB walk. Best effort: false when the kernel refused
// (THP disabled, no MADV_COLLAPSE, no free huge page); the memory stays usable either way.
bool advise_huge_pages(const void* data, size_t bytes);
// The same for every weight matrix the model holds in its own memory.
void advise_huge_pages(const model_weights& w);

// Bytes of AnonHugePages in the mappings that overlap [data, data + bytes) (/proc/self/smaps).
uint64_t huge_page_bytes(const void* data, size_t bytes);

}  // namespace troupe
