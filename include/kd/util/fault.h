// Fault injection for the kill -9 tests: fault_point("checkpoint") kills this process with SIGKILL, as an
// out-of-memory killer or a lost machine would, when the environment variable KD_FAULT is
// "checkpoint:N" and this is the N-th time (from 1) that the point is passed. Without KD_FAULT nothing
// happens. Points: "step" (an optimizer step applied, before any checkpoint of it), "checkpoint" (the resume
// checkpoint half written: its weights in the staging folder, not yet its optimizer state), "summary"
// (train-teacher: training done, the run's summary not yet written), "report" (distill: every part done, the
// report not yet written), "write" (any safetensors file, a model or a cache, half written: its header on disk
// under the temporary name, no tensor yet).
#pragma once

namespace kd {

void fault_point(const char* name);

}  // namespace kd
