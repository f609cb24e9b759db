#include "kd/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "kd/error.h"
#include "kd/io/int8_rows.h"
#include "kd/util/fault.h"

namespace fs = std::filesystem;

namespace kd {

// The format stores raw little-endian bytes and we copy them straight into tensor memory.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace {

// A header this large is not a real checkpoint; refusing it keeps a corrupt length from
// turning into a huge allocation.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1024 * 1024;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeDesc {
  const char* name;
  torch::ScalarType type;
  uint64_t size;
};

constexpr DtypeDesc kDtypes[] = {
    {"F64", torch::kFloat64, 8}, {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8}, {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeDesc* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeDesc* dtype_by_type(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return &d;
  return nullptr;
}

std::string supported_names() {
  std::string s;
  for (const auto& d : kDtypes) s += (s.empty() ? "" : ", ") + std::string(d.name);
  return s;
}

std::string tensor_where(const std::string& path, const std::string& name) {
  return path + ": tensor '" + name + "'";
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Byte count of a tensor, or false when it does not fit in 64 bits (a corrupt shape must not
// wrap around and happen to match the offsets).
bool checked_nbytes(const std::vector<int64_t>& shape, uint64_t elem_size, uint64_t& out) {
  uint64_t n = elem_size;
  for (int64_t d : shape) {
    const auto ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > std::numeric_limits<uint64_t>::max() / ud) return false;
    n *= ud;
  }
  out = n;
  return true;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const nlohmann::json& e) {
  const std::string where = tensor_where(path, name);
  if (!e.is_object()) throw FormatError(located(where, "header entry is not a JSON object"));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!e.contains(key)) throw FormatError(located(where, std::string("header entry has no '") + key + "'"));

  TensorInfo info;
  info.name = name;
  const auto& dt = e.at("dtype");
  if (!dt.is_string()) throw FormatError(located(where, "'dtype' is not a string"));
  info.dtype = dt.get<std::string>();
  const DtypeDesc* desc = dtype_by_name(info.dtype);
  if (!desc) throw FormatError(located(where, "unknown dtype '" + info.dtype + "'", "supported: " + supported_names()));

  const auto& shape = e.at("shape");
  if (!shape.is_array()) throw FormatError(located(where, "'shape' is not an array"));
  for (const auto& d : shape) {
    if (!d.is_number_integer()) throw FormatError(located(where, "'shape' holds a non-integer " + d.dump()));
    if (d.is_number_unsigned()) {
      const auto u = d.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw FormatError(located(where, "dimension " + d.dump() + " is too large"));
      info.shape.push_back(static_cast<int64_t>(u));
    } else {
      const auto v = d.get<int64_t>();
      if (v < 0) throw FormatError(located(where, "negative dimension " + std::to_string(v) + " in shape"));
      info.shape.push_back(v);
    }
  }

  const auto& off = e.at("data_offsets");
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    throw FormatError(located(where, "'data_offsets' is not a pair of non-negative integers: " + off.dump()));
  info.begin = off[0].get<uint64_t>();
  info.end = off[1].get<uint64_t>();
  if (info.begin > info.end)
    throw FormatError(located(where, "data_offsets begin " + std::to_string(info.begin) + " > end " +
                                         std::to_string(info.end)));

  uint64_t nbytes = 0;
  if (!checked_nbytes(info.shape, desc->size, nbytes))
    throw FormatError(located(where, "shape " + shape_str(info.shape) + " is too large"));
  if (nbytes != info.end - info.begin)
    throw FormatError(located(where, "shape " + shape_str(info.shape) + " x " + info.dtype + " needs " +
                                         std::to_string(nbytes) + " bytes but data_offsets span " +
                                         std::to_string(info.end - info.begin)));
  return info;
}

// nlohmann keeps the last of two equal keys silently; a checkpoint with a duplicated tensor name
// is malformed, so top-level keys are tracked while parsing.
nlohmann::json parse_header(const std::string& path, const std::string& text) {
  std::set<std::string> seen;
  std::string dup;
  nlohmann::json::parser_callback_t cb = [&](int depth, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
    if (ev == nlohmann::json::parse_event_t::key && depth == 1 && dup.empty()) {
      const auto key = parsed.get<std::string>();
      if (!seen.insert(key).second) dup = key;
    }
    return true;
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, cb);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(located(path, "safetensors header is not valid JSON", e.what()));
  }
  if (!j.is_object()) throw FormatError(located(path, "safetensors header is not a JSON object"));
  if (!dup.empty()) throw FormatError(located(tensor_where(path, dup), "appears twice in the header"));
  return j;
}

// Copies a tensor's bytes from an open stream; the stream is positioned here, so only that
// tensor's bytes are ever read.
torch::Tensor read_raw(std::ifstream& in, const std::string& path, uint64_t data_start, const TensorInfo& info) {
  const DtypeDesc* desc = dtype_by_name(info.dtype);
  auto t = torch::empty(info.shape, torch::TensorOptions().dtype(desc->type));
  const uint64_t n = info.end - info.begin;
  if (n == 0) return t;
  in.clear();
  in.seekg(static_cast<std::streamoff>(data_start + info.begin));
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(n));
  if (!in || static_cast<uint64_t>(in.gcount()) != n)
    throw IoError(located(tensor_where(path, info.name), "cannot read tensor bytes", "file truncated or changed?"));
  if (desc->type == torch::kBool) {
    // Bytes other than 0/1 are not valid bools in torch; catching them here avoids undefined behaviour.
    const auto* p = static_cast<const uint8_t*>(t.data_ptr());
    if (std::any_of(p, p + n, [](uint8_t b) { return b > 1; }))
      throw FormatError(located(tensor_where(path, info.name), "BOOL tensor holds a byte other than 0 or 1"));
  }
  return t;
}

torch::Tensor convert(const torch::Tensor& t, torch::ScalarType float_type) {
  if (!torch::isFloatingType(float_type))
    throw Error("safetensors: requested float type " + std::string(c10::toString(float_type)) + " is not floating");
  // torch's own cast keeps F16/BF16 -> F32 exact and rounds the same way Python would otherwise.
  if (torch::isFloatingType(t.scalar_type()) && t.scalar_type() != float_type) return t.to(float_type);
  return t;
}

std::ifstream open_for_read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(located(path, fs::exists(path) ? "cannot be read" : "no such file"));
  return in;
}

}  // namespace

SafeTensorsFile::SafeTensorsFile(const std::string& path) : path_(path) {
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_regular_file(path, ec)) throw IoError(located(path, "is not a regular file"));
  std::ifstream in = open_for_read(path);
  const uint64_t file_size = fs::file_size(path, ec);
  if (ec) throw IoError(located(path, "cannot get file size: " + ec.message()));
  if (file_size < 8)
    throw FormatError(located(path, "file is " + std::to_string(file_size) + " bytes, too short for a safetensors header"));

  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  if (!in) throw IoError(located(path, "cannot read the header length"));
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxHeaderBytes)
    throw FormatError(located(path, "header length " + std::to_string(header_len) + " is implausible",
                              "not a safetensors file?"));
  if (header_len > file_size - 8)
    throw IoError(located(path, "header length " + std::to_string(header_len) + " exceeds the file size " +
                                    std::to_string(file_size), "file truncated?"));

  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  if (!in) throw IoError(located(path, "cannot read the header"));
  const nlohmann::json header = parse_header(path, text);

  data_start_ = 8 + header_len;
  const uint64_t data_size = file_size - data_start_;
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, entry] : header.items()) {
    if (name == kMetadataKey) {
      if (!entry.is_object()) throw FormatError(located(path + ": " + kMetadataKey, "is not a JSON object"));
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string())
          throw FormatError(located(path + ": " + kMetadataKey + "." + k, "metadata value is not a string"));
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    TensorInfo info = parse_entry(path, name, entry);
    if (info.end > data_size)
      throw IoError(located(tensor_where(path, name), "data ends at byte " + std::to_string(info.end) +
                                                          " but the data section has " + std::to_string(data_size),
                            "file truncated?"));
    by_offset.push_back(&infos_.emplace(name, std::move(info)).first->second);
  }

  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    const TensorInfo& cur = *by_offset[i];
    // Zero-size tensors occupy no bytes, so sharing an offset with a neighbour is harmless.
    if (cur.begin < prev.end && cur.begin != cur.end)
      throw FormatError(located(tensor_where(path, cur.name), "data overlaps tensor '" + prev.name + "'"));
  }
}

std::vector<std::string> SafeTensorsFile::names() const {
  std::vector<const TensorInfo*> v;
  for (const auto& kv : infos_) v.push_back(&kv.second);
  std::stable_sort(v.begin(), v.end(), [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  std::vector<std::string> out;
  for (const auto* p : v) out.push_back(p->name);
  return out;
}

const TensorInfo& SafeTensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) throw FormatError(located(tensor_where(path_, name), "not in the file"));
  return it->second;
}

bool SafeTensorsFile::int8_rows(const std::string& name) const {
  const auto it = infos_.find(name);
  if (it == infos_.end() || it->second.dtype != "I8" || it->second.shape.size() < 2) return false;
  const auto scale = infos_.find(name + kInt8ScaleSuffix);
  return scale != infos_.end() && scale->second.dtype == "F32" && scale->second.shape.size() == 1 &&
         scale->second.shape[0] == it->second.shape[0];
}

bool SafeTensorsFile::holds_float(const std::string& name) const {
  const auto& dtype = info(name).dtype;
  return dtype == "F32" || dtype == "F16" || dtype == "BF16" || dtype == "F64" || int8_rows(name);
}

torch::Tensor SafeTensorsFile::load(const std::string& name, torch::ScalarType float_type) const {
  const TensorInfo& i = info(name);
  std::ifstream in = open_for_read(path_);
  if (int8_rows(name)) {
    Int8Rows q{read_raw(in, path_, data_start_, i), read_raw(in, path_, data_start_, info(name + kInt8ScaleSuffix))};
    if (!torch::isfinite(q.scales).all().item<bool>() || (q.scales <= 0).any().item<bool>())
      throw FormatError(located(tensor_where(path_, name + kInt8ScaleSuffix), "int8 scales must be finite and positive"));
    return dequantize_rows(q, float_type);
  }
  return convert(read_raw(in, path_, data_start_, i), float_type);
}

std::map<std::string, torch::Tensor> SafeTensorsFile::load_all(torch::ScalarType float_type) const {
  std::ifstream in = open_for_read(path_);
  std::map<std::string, torch::Tensor> out;
  for (const auto& name : names()) out[name] = convert(read_raw(in, path_, data_start_, infos_.at(name)), float_type);
  return out;
}

namespace {

// Streams the file to a temporary name beside the target and renames it into place, so a reader
// never sees a partial checkpoint and a large model is never held twice in memory.
class TempFile {
 public:
  explicit TempFile(std::string target) : target_(std::move(target)), tmp_(target_ + ".tmp-" + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw IoError(located(target_, std::string("cannot open for writing: ") + std::strerror(errno),
                            "check that the folder exists and is writable"));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, uint64_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      // Linux caps one write() near 2 GiB; larger tensors go in pieces.
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1ull << 30));
      const ssize_t w = ::write(fd_, p, chunk);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw IoError(located(target_, std::string("write failed: ") + std::strerror(errno), "disk full?"));
      p += w;
      n -= static_cast<uint64_t>(w);
    }
  }

  void commit() {
    // fsync before rename: otherwise a crash can leave the new name pointing at empty data.
    if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
      fd_ = -1;
      throw IoError(located(target_, std::string("cannot flush to disk: ") + std::strerror(errno)));
    }
    fd_ = -1;
    std::error_code ec;
    fs::rename(tmp_, target_, ec);
    if (ec) throw IoError(located(target_, "cannot rename temporary file into place: " + ec.message()));
    committed_ = true;
  }

 private:
  std::string target_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Everything is checked before the file is opened, so bad input never touches the disk.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header[kMetadataKey];
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const std::string where = tensor_where(path, name);
    if (name.empty() || name == kMetadataKey) throw FormatError(located(where, "is not a valid tensor name"));
    if (!seen.insert(name).second) throw FormatError(located(where, "is given twice"));
    if (!t.defined()) throw FormatError(located(where, "is an undefined tensor"));
    const DtypeDesc* desc = dtype_by_type(t.scalar_type());
    if (!desc)
      throw FormatError(located(where, std::string("dtype ") + c10::toString(t.scalar_type()) + " cannot be saved",
                                "supported: " + supported_names()));
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * desc->size;
    header[name] = {{"dtype", desc->name}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(located(path, "tensor names and metadata must be valid UTF-8", e.what()));
  }
  // Pad with spaces (allowed by the format) so the data section starts 8-byte aligned, which lets
  // readers that map the file view tensors in place.
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  TempFile out(path);
  out.write(len_bytes, 8);
  out.write(text.data(), text.size());
  fault_point("write");  // the header on disk, no tensor yet: a half-written file (kill -9 tests)
  for (const auto& [name, t] : tensors) {
    // One tensor at a time: at most one extra copy (device -> CPU, or made contiguous) is alive.
    const torch::Tensor c = t.to(torch::kCPU).contiguous();
    if (c.numel() > 0) out.write(c.data_ptr(), static_cast<uint64_t>(c.numel()) * c.element_size());
  }
  out.commit();
}

}  // namespace kd
