#include <memory>
#include <string>

#include "fuzz_files.h"
#include "fuzz_targets.h"
#include "kd/error.h"
#include "kd/io/safetensors.h"

namespace kd::fuzz {

int safetensors_input(const uint8_t* data, size_t size) {
  static InputFile file("input.safetensors");
  std::unique_ptr<SafeTensorsFile> f;
  try {
    f = std::make_unique<SafeTensorsFile>(file.write(data, size));
  } catch (const Error&) {
    return 0;
  }
  for (const auto& [k, v] : f->metadata()) (void)k, (void)v;
  for (const auto& name : f->names()) {
    const TensorInfo& info = f->info(name);
    if (info.name != name || info.begin > info.end || !f->contains(name))
      throw std::logic_error("safetensors: tensor '" + name + "' has an inconsistent entry");
    const bool is_float = f->holds_float(name);
    try {
      const torch::Tensor t = f->load(name);
      if (t.sizes().vec() != info.shape)
        throw std::logic_error("safetensors: tensor '" + name + "' loaded with another shape");
      if (is_float != torch::isFloatingType(t.scalar_type()))
        throw std::logic_error("safetensors: tensor '" + name + "': holds_float disagrees with the loaded type");
      if (is_float) f->load(name, torch::kFloat16);
    } catch (const Error&) {
    }
  }
  try {
    const auto all = f->load_all();
    if (all.size() != f->names().size()) throw std::logic_error("safetensors: load_all lost a tensor");
  } catch (const Error&) {
  }
  try {
    f->info("no such tensor");
    throw std::logic_error("safetensors: info() of an absent tensor returned");
  } catch (const FormatError&) {
  }
  return 0;
}

}  // namespace kd::fuzz

#ifdef KD_FUZZ_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kd::fuzz::safetensors_input(data, size);
}
#endif
