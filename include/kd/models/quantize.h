// Dynamic int8 quantization of a model for CPU inference (Jacob et al. 2018's affine scheme, as
// PyTorch's quantize_dynamic applies it): weights int8 with one scale per output row, activations
// quantized to uint8 on every call from their own range, matrix products in LibTorch's int8 kernels,
// everything else (LayerNorm, softmax, GELU, the recurrence's gates) in float.
//
// A module opts in by deriving from Int8Quantizable (DynamicLinear; the BiLSTM for its LSTM; the
// TextCNN for its convolutions); quantize_int8(module) finds every such part.
//
// An int8 model folder is the source model's folder with model.safetensors holding every float matrix
// (dims >= 2: Linear, LSTM and convolution weights, embedding tables) as int8 rows
// (kd/io/int8_rows.h) and kd_quantization.json saying so. load_classifier reads such a folder like any
// other and quantizes the model it builds, so `kd eval`, `predict`, `bench infer`, `serve` and the
// report take it unchanged. Embedding tables are stored as int8 but looked up in float: a lookup has
// nothing to multiply, so int8 there saves disk, not time.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>

namespace kd {

class TextClassifier;

inline constexpr const char* kQuantizationFile = "kd_quantization.json";

class Int8Quantizable {
 public:
  virtual ~Int8Quantizable() = default;
  // Switches this module's own matrix products (not its children's) to int8.
  virtual void quantize_int8() = 0;
};

// Quantizes every Int8Quantizable part of `module` (itself included) and puts it in eval mode.
// Returns how many parts were quantized. With `keep_float` (an ECMAScript regex, searched in each
// part's dotted name from `module`, e.g. "bert.encoder.layer.3.output.dense"), the parts it matches
// stay float: their weights are still stored as int8 rows, but their products run in float32 on the
// dequantized weights, so only the weight rounding is left and not the activations' (the layers whose
// inputs have outliers, such as BERT's feed-forward output after GELU; Bondarenko et al. 2021).
// ConfigError (naming `where`) when the regex does not parse or matches no part.
int64_t quantize_int8(torch::nn::Module& module, const std::string& keep_float = "",
                      const std::string& where = "--float-modules");

// For a quantized part's forward: TrainError when the module is in training mode.
void require_inference(const torch::nn::Module& module);

// Writes `model` (loaded from `source`) as an int8 folder at `out` (staged, renamed into place;
// `overwrite` replaces an existing folder); `keep_float` as for quantize_int8, recorded in the folder.
// FormatError when the model has no part that can be quantized or `source` is already quantized;
// nothing is left at `out` on error. Returns the kd_quantization.json it wrote.
nlohmann::json write_int8_folder(TextClassifier& model, const std::string& source, const std::string& out,
                                 bool overwrite, const std::string& keep_float = "");

// The folder's kd_quantization.json, checked (an object of this kd's method and format_version, else a
// FormatError naming the file and key); null when the folder is a float one.
nlohmann::json read_folder_quantization(const std::string& dir);

// After a model is loaded from `dir`: quantizes it if the folder says so (read_folder_quantization), and
// returns that file's contents (null when the folder is a float one).
nlohmann::json apply_folder_quantization(TextClassifier& model, const std::string& dir);

}  // namespace kd
