// Fuzzes the safetensors reader: the input is a whole .safetensors file, handed to
// open_safetensors_file through a memfd (the reader maps a path); for files that open, every
// small tensor is converted to f32.
#include <cstdint>
#include <vector>

#include "fuzz_support.h"
#include "runtime/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace troupe;
  fuzz::memfd_file f(data, size);
  auto src = open_safetensors_file(f.path());
  if (!src.ok()) return 0;
  std::vector<float> out;
  for (const tensor_info& t : src.value()->tensors()) {
    if (t.num_elements() <= (1 << 16)) (void)src.value()->read_f32(t.name, out);
  }
  return 0;
}
