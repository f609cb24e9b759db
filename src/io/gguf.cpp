#include "kd/io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "kd/error.h"

namespace kd {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 8;         // nested arrays deeper than this are not a real model
constexpr uint64_t kDefaultAlignment = 32;

// Reads little-endian values from the mapped header, refusing to step past the end of the file.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string(const std::string& what) {
    const auto n = read<uint64_t>(what + " length");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

  // `count` items of at least `min_size` bytes each must fit in what is left (checked before anything
  // is allocated for them).
  void need_items(uint64_t count, uint64_t min_size, const std::string& what) const {
    if (count > left() / min_size)
      throw IoError(located(path_, "file truncated or corrupt: " + what + " of " + std::to_string(count) +
                                       " entries needs at least " + std::to_string(min_size) + " bytes each, but only " +
                                       std::to_string(left()) + " bytes follow offset " + std::to_string(pos_)));
  }

  void need(uint64_t n, const std::string& what) const {
    if (n > left())
      throw IoError(located(path_, "file truncated: " + what + " needs " + std::to_string(n) + " bytes at offset " +
                                       std::to_string(pos_) + " but the file has " + std::to_string(size_) + " bytes"));
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
};

// Smallest encoded size of one value of type t (strings: the length field), so that an element count
// can be checked against the bytes left before anything is allocated.
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::UInt8: case GgufValueType::Int8: case GgufValueType::Bool: return 1;
    case GgufValueType::UInt16: case GgufValueType::Int16: return 2;
    case GgufValueType::UInt32: case GgufValueType::Int32: case GgufValueType::Float32: return 4;
    case GgufValueType::UInt64: case GgufValueType::Int64: case GgufValueType::Float64: return 8;
    case GgufValueType::String: return 8;
    case GgufValueType::Array: return 12;
  }
  return 1;
}

bool value_type_known(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::Float64); }

void read_scalar(Cursor& c, GgufValueType t, GgufValue& v, const std::string& what) {
  switch (t) {
    case GgufValueType::UInt8: v.u = c.read<uint8_t>(what); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::Int8: v.i = c.read<int8_t>(what); break;
    case GgufValueType::UInt16: v.u = c.read<uint16_t>(what); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::Int16: v.i = c.read<int16_t>(what); break;
    case GgufValueType::UInt32: v.u = c.read<uint32_t>(what); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::Int32: v.i = c.read<int32_t>(what); break;
    case GgufValueType::UInt64: v.u = c.read<uint64_t>(what); v.i = static_cast<int64_t>(v.u); break;
    case GgufValueType::Int64: v.i = c.read<int64_t>(what); break;
    case GgufValueType::Float32: v.f = c.read<float>(what); break;
    case GgufValueType::Float64: v.f = c.read<double>(what); break;
    case GgufValueType::Bool: v.i = c.read<uint8_t>(what) != 0; break;
    case GgufValueType::String: v.s = c.read_string(what); break;
    case GgufValueType::Array: break;  // handled by read_value
  }
  if (t == GgufValueType::UInt64 && v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) v.i = -1;
}

void read_value(Cursor& c, GgufValueType t, GgufValue& v, const std::string& path, const std::string& where,
                int depth) {
  v.type = t;
  if (t != GgufValueType::Array) {
    read_scalar(c, t, v, where);
    return;
  }
  if (depth >= kMaxArrayDepth) throw FormatError(located(where, "arrays nested too deeply"));
  const auto et = c.read<uint32_t>(where + " array type");
  if (!value_type_known(et)) throw FormatError(located(where, "unknown array element type " + std::to_string(et)));
  v.elem_type = static_cast<GgufValueType>(et);
  v.count = c.read<uint64_t>(where + " array length");
  c.need_items(v.count, min_value_bytes(v.elem_type), where.substr(path.size() + 2) + " array");
  GgufValue e;
  for (uint64_t k = 0; k < v.count; ++k) {
    e = GgufValue{};
    read_value(c, v.elem_type, e, path, where, depth + 1);
    switch (v.elem_type) {
      case GgufValueType::Float32: case GgufValueType::Float64: v.floats.push_back(e.f); break;
      case GgufValueType::String: v.strings.push_back(std::move(e.s)); break;
      case GgufValueType::Array: v.items.push_back(std::move(e)); break;
      case GgufValueType::UInt64:
        if (e.i < 0) throw FormatError(located(where, "array element " + std::to_string(k) + " does not fit in int64"));
        v.ints.push_back(e.i);
        break;
      default: v.ints.push_back(e.i); break;
    }
  }
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
  static const char* names[] = {"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
                                "bool", "string", "array", "uint64", "int64", "float64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "unknown";
}

bool GgufValue::is_integer() const {
  return type != GgufValueType::Float32 && type != GgufValueType::Float64 && type != GgufValueType::String &&
         type != GgufValueType::Array && type != GgufValueType::Bool;
}

std::vector<int64_t> GgufTensorInfo::torch_shape() const { return {ne.rbegin(), ne.rend()}; }

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

GgufFile::GgufFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(located(path, std::string("cannot open GGUF file: ") + std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(located(path, "not a regular file"));
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw IoError(located(path, std::string("cannot map GGUF file: ") + std::strerror(err)));
    }
    data_ = static_cast<const uint8_t*>(p);
    mapped_ = true;
  }
  ::close(fd);
  try {
    parse();
  } catch (...) {
    if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
    throw;
  }
}

std::unique_ptr<GgufFile> GgufFile::from_bytes(std::string bytes, const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = name;
  f->owned_ = std::move(bytes);
  f->data_ = reinterpret_cast<const uint8_t*>(f->owned_.data());
  f->size_ = f->owned_.size();
  f->parse();
  return f;
}

GgufFile::~GgufFile() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string GgufFile::key_where(const std::string& key) const { return path_ + ": key '" + key + "'"; }

void GgufFile::parse() {
  Cursor c(data_, size_, path_);
  const auto magic = c.read<uint32_t>("magic");
  if (std::memcmp(&magic, "GGUF", 4) != 0) {
    std::string got(reinterpret_cast<const char*>(&magic), 4);
    for (auto& ch : got) if (ch < 32 || ch > 126) ch = '?';
    throw FormatError(located(path_, "not a GGUF file: magic is '" + got + "', expected 'GGUF'"));
  }
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    const bool swapped = version_ == 0x02000000u || version_ == 0x03000000u;
    throw FormatError(located(path_, "unsupported GGUF version " + std::to_string(version_),
                              swapped ? "this looks like a big-endian GGUF file; only little-endian is read"
                                      : "versions 2 and 3 are supported"));
  }
  const auto n_tensors = c.read<uint64_t>("tensor count");
  const auto n_kv = c.read<uint64_t>("metadata count");
  // Each entry takes at least 8+4+1 (key, type, smallest value) or 8+4+4+8 (tensor) bytes.
  c.need_items(n_kv, 13, "metadata");
  for (uint64_t k = 0; k < n_kv; ++k) {
    const std::string key = c.read_string("metadata key " + std::to_string(k));
    const std::string where = key_where(key);
    if (metadata_.count(key)) throw FormatError(located(where, "duplicate metadata key"));
    const auto t = c.read<uint32_t>(where + " type");
    if (!value_type_known(t)) throw FormatError(located(where, "unknown metadata value type " + std::to_string(t)));
    GgufValue v;
    read_value(c, static_cast<GgufValueType>(t), v, path_, where, 0);
    metadata_.emplace(key, std::move(v));
    key_order_.push_back(key);
  }

  if (has("general.alignment")) {
    const auto& a = get("general.alignment");
    if (!a.is_integer() || a.i <= 0 || (a.i & (a.i - 1)) != 0)
      throw FormatError(located(key_where("general.alignment"), "alignment must be a positive power of two"));
    alignment_ = static_cast<uint64_t>(a.i);
  } else {
    alignment_ = kDefaultAlignment;
  }

  c.need_items(n_tensors, 24, "tensor table");
  tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo info;
    info.name = c.read_string("tensor name " + std::to_string(k));
    const std::string where = path_ + ": tensor '" + info.name + "'";
    if (tensor_index_.count(info.name)) throw FormatError(located(where, "duplicate tensor name"));
    const auto n_dims = c.read<uint32_t>(where + " dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      throw FormatError(located(where, "has " + std::to_string(n_dims) + " dimensions; 1 to 4 are allowed"));
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const auto ne = c.read<uint64_t>(where + " shape");
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || (ne != 0 && numel > (1ull << 62) / ne))
        throw FormatError(located(where, "dimension " + std::to_string(ne) + " is too large"));
      numel *= ne;
      info.ne.push_back(static_cast<int64_t>(ne));
    }
    const auto t = c.read<uint32_t>(where + " type");
    if (!ggml_type_known(t))
      throw FormatError(located(where, "unsupported tensor type " + std::to_string(t),
                                "supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1"));
    info.type = static_cast<GgmlType>(t);
    info.offset = c.read<uint64_t>(where + " offset");
    const auto block = static_cast<uint64_t>(ggml_block_size(info.type));
    if (info.ne[0] % static_cast<int64_t>(block) != 0)
      throw FormatError(located(where, "row length " + std::to_string(info.ne[0]) + " is not a multiple of the " +
                                           ggml_type_name(info.type) + " block size " + std::to_string(block)));
    info.nbytes = numel / block * static_cast<uint64_t>(ggml_block_bytes(info.type));
    if (info.offset % alignment_ != 0)
      throw FormatError(located(where, "offset " + std::to_string(info.offset) + " is not a multiple of the alignment " +
                                           std::to_string(alignment_)));
    tensor_index_.emplace(info.name, tensors_.size());
    tensors_.push_back(std::move(info));
  }

  data_offset_ = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  for (const auto& info : tensors_) {
    const std::string where = path_ + ": tensor '" + info.name + "'";
    const uint64_t begin = data_offset_ + info.offset;
    if (info.offset > size_ || begin > size_)
      throw FormatError(located(where, "offset " + std::to_string(info.offset) + " (byte " + std::to_string(begin) +
                                           ") is past the end of the file (" + std::to_string(size_) + " bytes)"));
    if (info.nbytes > size_ - begin)
      throw IoError(located(where, "file truncated: the tensor needs bytes " + std::to_string(begin) + ".." +
                                       std::to_string(begin + info.nbytes) + " but the file has " +
                                       std::to_string(size_) + " bytes"));
  }
}

const GgufValue& GgufFile::get(const std::string& key) const {
  auto it = metadata_.find(key);
  if (it == metadata_.end()) throw FormatError(located(key_where(key), "missing metadata key"));
  return it->second;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const auto& v = get(key);
  if (!v.is_integer() || (v.i < 0 && v.type == GgufValueType::UInt64))
    throw FormatError(located(key_where(key), std::string("expected an integer, found ") + gguf_value_type_name(v.type)));
  return v.i;
}

int64_t GgufFile::get_int(const std::string& key, int64_t fallback) const { return has(key) ? get_int(key) : fallback; }

double GgufFile::get_float(const std::string& key) const {
  const auto& v = get(key);
  if (v.type == GgufValueType::Float32 || v.type == GgufValueType::Float64) return v.f;
  if (v.is_integer()) return static_cast<double>(v.i);
  throw FormatError(located(key_where(key), std::string("expected a number, found ") + gguf_value_type_name(v.type)));
}

double GgufFile::get_float(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool GgufFile::get_bool(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = get(key);
  if (v.type != GgufValueType::Bool)
    throw FormatError(located(key_where(key), std::string("expected a bool, found ") + gguf_value_type_name(v.type)));
  return v.i != 0;
}

std::string GgufFile::get_string(const std::string& key) const {
  const auto& v = get(key);
  if (v.type != GgufValueType::String)
    throw FormatError(located(key_where(key), std::string("expected a string, found ") + gguf_value_type_name(v.type)));
  return v.s;
}

std::string GgufFile::get_string(const std::string& key, const std::string& fallback) const {
  return has(key) ? get_string(key) : fallback;
}

const std::vector<std::string>& GgufFile::get_strings(const std::string& key) const {
  const auto& v = get(key);
  if (!v.is_array() || v.elem_type != GgufValueType::String)
    throw FormatError(located(key_where(key), "expected an array of strings"));
  return v.strings;
}

const std::vector<int64_t>& GgufFile::get_ints(const std::string& key) const {
  const auto& v = get(key);
  GgufValue probe;
  probe.type = v.elem_type;
  if (!v.is_array() || !probe.is_integer()) throw FormatError(located(key_where(key), "expected an array of integers"));
  return v.ints;
}

const GgufTensorInfo& GgufFile::tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  if (it == tensor_index_.end()) throw FormatError(located(path_ + ": tensor '" + name + "'", "no such tensor in the file"));
  return tensors_[it->second];
}

const uint8_t* GgufFile::raw(const std::string& name) const { return data_ + data_offset_ + tensor(name).offset; }

torch::Tensor GgufFile::load(const std::string& name) const {
  const auto& info = tensor(name);
  auto out = torch::empty(info.torch_shape(), torch::kFloat32);
  dequantize_ggml(info.type, raw(name), info.numel(), out.data_ptr<float>());
  return out;
}

}  // namespace kd
