#!/usr/bin/env python3
"""Writes an F16 conversion of a GGUF: every 2-D tensor dequantized (gguf's dequantizer) and stored
as float16, 1-D tensors (norms) kept float32, every metadata key copied (general.file_type set to
MOSTLY_F16). For the side-by-side benchmark (bench/llama_cpp_compare.py); needs the `gguf` and
`numpy` packages (the ref venv: ~/.cache/troupe/ref-venv/bin/python).

Usage: gguf_to_f16.py IN.gguf OUT.gguf
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize


def main():
    src, dst = sys.argv[1], sys.argv[2]
    r = GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    tmp = dst + ".part"
    w = GGUFWriter(tmp, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "general.file_type":
            w.add_file_type(1)  # LLAMA_FTYPE_MOSTLY_F16
            continue
        vtype = f.types[0]
        sub = f.types[-1] if vtype == GGUFValueType.ARRAY else None
        w.add_key_value(name, f.contents(), vtype, sub_type=sub)
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type)  # float32, shape in numpy order [rows, cols]
        a = a.astype(np.float16) if a.ndim >= 2 else a.astype(np.float32)
        w.add_tensor(t.name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, dst)


if __name__ == "__main__":
    main()
