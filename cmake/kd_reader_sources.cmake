# The parts of kd that read untrusted bytes (GGUF, safetensors, tokenizer files, YAML configs, tables,
# knowledge caches), and every source their object files need to link: the cache readers sit beside their
# writers, which run teachers, batch data and talk to data-parallel groups. Two builds compile this set
# on its own, so that they need not build all of kd: the libFuzzer targets (fuzz/CMakeLists.txt) and the
# sanitized reader tests that CI runs (tests/CMakeLists.txt, KD_SANITIZE), each through kd_add_reader_library.
set(KD_READER_SOURCES
    # GGUF, BPE tokenizers, LLaMA
    src/error.cpp src/io/atomic_file.cpp src/io/gguf.cpp src/io/gguf_dequant.cpp src/text/unicode.cpp
    src/text/bpe_pretokenize.cpp src/text/bpe_tokenizer.cpp src/text/bpe_tokenizer_io.cpp src/models/llama.cpp
    src/models/llama_layers.cpp src/models/llama_gguf.cpp src/models/model_output.cpp
    # safetensors, WordPiece, YAML config, tables
    src/io/safetensors.cpp src/io/int8_rows.cpp src/text/wordpiece_tokenizer.cpp src/text/wordpiece_tokenizer_io.cpp
    src/io/config.cpp src/data/table_reader.cpp
    # knowledge, LM top-k and feature caches, and what their writers link against
    src/knowledge/cache_file.cpp src/knowledge/cache_key.cpp src/knowledge/knowledge_cache.cpp
    src/knowledge/feature_cache.cpp src/knowledge/lm_topk_cache.cpp src/knowledge/live_teacher.cpp
    src/losses/chunked_lm_loss.cpp src/losses/token_divergence.cpp src/data/batch.cpp src/data/bucket_batcher.cpp
    src/train/data_parallel.cpp src/util/fault.cpp src/util/fnv1a.cpp src/util/log.cpp src/util/precision.cpp
    src/util/progress_bar.cpp)
list(TRANSFORM KD_READER_SOURCES PREPEND ${CMAKE_SOURCE_DIR}/)

# A static library of the reader sources with kd's include path, dependencies and precompiled header, built
# without NCCL (the top-level CMakeLists.txt sets KD_WITH_NCCL for kdlib only; source properties are per folder).
function(kd_add_reader_library name)
  add_library(${name} STATIC ${KD_READER_SOURCES})
  target_include_directories(${name} PUBLIC ${CMAKE_SOURCE_DIR}/include)
  target_link_libraries(${name} PUBLIC ${TORCH_LIBRARIES} yaml-cpp nlohmann_json::nlohmann_json PkgConfig::UTF8PROC
                        ZLIB::ZLIB)
  target_compile_options(${name} PUBLIC ${TORCH_CXX_FLAGS})
  target_precompile_headers(${name} PUBLIC <torch/torch.h> <string> <vector> <map>)
  set_source_files_properties(${CMAKE_SOURCE_DIR}/src/train/data_parallel.cpp PROPERTIES COMPILE_DEFINITIONS KD_WITH_NCCL=0)
endfunction()
