// Package torchfile reads the tensors of PyTorch checkpoint files without
// running any code from them.
//
// A checkpoint is a Python pickle, and unpickling normally imports and calls
// whatever the file names. Here a small pickle machine builds only data: the
// file's globals are looked up in a fixed whitelist, each entry modelled in
// Go, and any other name is an error that says which one.
//
// # Formats
//
// Open tells three layouts apart by their first bytes:
//
//   - zip: torch.save since PyTorch 1.6 (also Lightning .ckpt). <root>/data.pkl
//     is the pickle; its persistent ids ('storage', type, key, location, numel)
//     name records <root>/data/<key> holding the raw elements. A <root>/byteorder
//     of "big" is refused. TorchScript archives are refused.
//   - legacy: torch.save before 1.6 or with _use_new_zipfile_serialization=False.
//     Five pickles in a row (magic number, protocol 1001, sys_info, the object,
//     the sorted storage keys), then each storage as an 8-byte little-endian
//     element count and its elements. Persistent ids are ('storage', type,
//     root_key, location, numel, view_metadata).
//   - pickle: pickle.dump of objects holding tensors, as NVlabs network pickles
//     are (stylegan2-ada-pytorch, stylegan3, eg3d). Each storage is
//     torch.storage._load_from_bytes(b), b being a legacy torch.save blob.
//
// Storage data is located, never loaded, when a file is opened; Tensor.Read
// reads one tensor's bytes. Byte strings over 64 KiB in a pickle (the
// _load_from_bytes blobs) likewise stay in the file as *Bytes.
//
// # Whitelist
//
//   - containers: collections.OrderedDict (its BUILD state, such as a state
//     dict's _metadata, goes to Dict.Attrs); the dict subclasses
//     dnnlib.util.EasyDict, dnnlib.EasyDict and Lightning's AttributeDict
//     (pytorch_lightning.utilities.parsing, lightning_fabric.utilities.data,
//     lightning.fabric.utilities.data); builtins.set and builtins.frozenset;
//     _codecs.encode (protocol-2 bytes, latin1 only).
//   - tensors: torch._utils._rebuild_tensor, _rebuild_tensor_v2 (6 or 7
//     arguments), _rebuild_tensor_v3 (PyTorch 2.x, dtype given), _rebuild_parameter,
//     _rebuild_parameter_with_state; torch._tensor._rebuild_from_type_v2 for
//     plain tensors and parameters (attributes dropped); torch.Tensor and
//     torch.nn.parameter.Parameter as names only; torch.Size; torch.device;
//     torch.storage._load_from_bytes.
//   - storage types torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage,
//     also under torch.cuda, and torch.UntypedStorage, torch.storage.UntypedStorage,
//     torch._UntypedStorage, torch.storage._UntypedStorage (bytes; the dtype comes
//     from _rebuild_tensor_v3).
//   - dtypes torch.float32, float16, bfloat16, float64, int64, int32, int16,
//     int8, uint8, bool and their aliases as values; the complex, wider
//     unsigned and float8 dtypes as names only.
//   - NVlabs: torch_utils.persistence._reconstruct_persistent_obj, read as an
//     *Object (class name, instance state, module source kept as text, never
//     run); numpy.dtype, numpy.ndarray, numpy.core.multiarray.scalar and
//     _reconstruct, numpy.core.numeric._frombuffer (also under numpy._core):
//     numpy scalars become Go numbers, arrays an *Object holding a *Tensor.
//
// # Limits
//
// Lengths are checked against the bytes left before anything is allocated.
// A pickle may hold at most 10,000 stack entries (so nesting is at most about
// that deep) and 10,000 open MARKs, 4M memo entries and 32M objects over the
// whole file; ints of up to 64 KiB; strings of up to 256 MiB; tensors of up
// to 64 dimensions, each element of which must lie inside its storage. Errors
// are one line; those from a pickle name the stream, the byte offset of the
// failing opcode (in the file, or in the zip record when it is compressed)
// and the opcode.
package torchfile
