// What tch 0.24 does not expose, for `engine::perf`: libtorch's Kineto profiler (a Chrome trace
// of the steps it records) and the CUDA caching allocator's statistics. Plain C functions that
// never throw: an exception's message is copied into `err` and the call returns non-zero.
// TOWERLAB_CUDA is defined by the build script only when libtorch ships c10_cuda.

#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <set>
#include <string>

#include <torch/csrc/autograd/profiler_kineto.h>

#ifdef TOWERLAB_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace {

void copy_error(const char* what, char* err, size_t len) {
  if (err == nullptr || len == 0) return;
  std::strncpy(err, what, len - 1);
  err[len - 1] = '\0';
}

namespace prof = torch::profiler::impl;

std::set<prof::ActivityType> activities(bool cuda) {
  std::set<prof::ActivityType> out{prof::ActivityType::CPU};
  if (cuda) out.insert(prof::ActivityType::CUDA);
  return out;
}

bool profiling_cuda = false;

}  // namespace

extern "C" {

// Starts recording (on the calling thread and the threads libtorch runs ops on) with
// input shapes; `cuda` adds the device's kernels (CUPTI).
int towerlab_profiler_start(int cuda, char* err, size_t len) {
  try {
    prof::ProfilerConfig config(prof::ProfilerState::KINETO, /*report_input_shapes=*/true,
                                /*profile_memory=*/false, /*with_stack=*/false,
                                /*with_flops=*/true);
    profiling_cuda = cuda != 0;
    auto acts = activities(profiling_cuda);
    torch::autograd::profiler::prepareProfiler(config, acts);
    torch::autograd::profiler::enableProfiler(config, acts);
    return 0;
  } catch (const std::exception& e) {
    copy_error(e.what(), err, len);
    return 1;
  }
}

// Stops recording and writes the Chrome trace (JSON) to `path`.
int towerlab_profiler_stop(const char* path, char* err, size_t len) {
  try {
    auto result = torch::autograd::profiler::disableProfiler();
    if (!result) {
      copy_error("the profiler returned no result", err, len);
      return 1;
    }
    result->save(std::string(path));
    return 0;
  } catch (const std::exception& e) {
    copy_error(e.what(), err, len);
    return 1;
  }
}

// Whether this build can read the CUDA caching allocator (libtorch with c10_cuda).
int towerlab_has_cuda_allocator(void) {
#ifdef TOWERLAB_CUDA
  return 1;
#else
  return 0;
#endif
}

// The caching allocator's bytes on `device`: allocated now, reserved now, allocated peak.
// Returns 2 when this build has no CUDA allocator.
int towerlab_cuda_memory(int device, int64_t* out, char* err, size_t len) {
#ifdef TOWERLAB_CUDA
  try {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(
        static_cast<c10::DeviceIndex>(device));
    const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    out[0] = stats.allocated_bytes[all].current;
    out[1] = stats.reserved_bytes[all].current;
    out[2] = stats.allocated_bytes[all].peak;
    return 0;
  } catch (const std::exception& e) {
    copy_error(e.what(), err, len);
    return 1;
  }
#else
  (void)device;
  (void)out;
  copy_error("libtorch was built without CUDA", err, len);
  return 2;
#endif
}

}  // extern "C"
