// Loads the LibTorch backend module (libqtos_torch.so) on first use. Search order: QTOS_TORCH_BACKEND (a path:
// nothing else is tried), the executable's own directory (the build tree's bin/), <prefix>/lib/qtos (the installed
// layout, the executable in <prefix>/bin), then the module this build made (tests and benchmarks anywhere in the tree).
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "models/detail/model_impl.hpp"

namespace qtos::models::detail {
namespace {

constexpr const char* kModule = "libqtos_torch.so";

std::filesystem::path exe_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

struct Loaded {
  const TorchBackend* backend = nullptr;
  std::string path;
};

Loaded load() {
  std::vector<std::string> paths;
  if (const char* explicit_path = std::getenv("QTOS_TORCH_BACKEND"); explicit_path != nullptr && *explicit_path != '\0') {
    paths.emplace_back(explicit_path);
  } else {
    if (const auto dir = exe_dir(); !dir.empty()) {
      paths.push_back((dir / kModule).string());
      paths.push_back((dir.parent_path() / "lib" / "qtos" / kModule).string());
    }
#ifdef QTOS_TORCH_BACKEND_BUILT
    paths.emplace_back(QTOS_TORCH_BACKEND_BUILT);
#endif
  }
  std::string tried;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      tried += "\n  " + path + ": no such file";
      continue;
    }
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* err = ::dlerror();
      std::string why = err != nullptr ? err : "dlopen failed";
      if (why.rfind(path + ": ", 0) == 0) why.erase(0, path.size() + 2);  // the loader names the file itself
      tried += "\n  " + path + ": " + why;
      continue;
    }
    const auto entry = reinterpret_cast<TorchBackendEntry>(::dlsym(handle, kTorchBackendEntry));
    const TorchBackend* backend = entry != nullptr ? entry(kTorchBackendAbi) : nullptr;
    if (backend == nullptr) {
      tried += "\n  " + path + ": " + (entry == nullptr ? std::string("no entry point ") + kTorchBackendEntry
                                                          : std::string("built from other sources than this binary (expected ") +
                                                                kTorchBackendAbi + ")");
      continue;  // left loaded: unloading a module whose static objects ran (LibTorch's) is not safe
    }
    spdlog::debug("LibTorch backend loaded from {}", path);
    return Loaded{backend, path};  // never unloaded: models and threads of LibTorch live until the process ends
  }
  throw std::runtime_error(std::string("the LibTorch backend (") + kModule + ") could not be loaded; tried:" + tried +
                           "\n(set QTOS_TORCH_BACKEND to the module's path; it is built beside the qtos binary and installed in "
                           "<prefix>/lib/qtos)");
}

const Loaded& loaded() {
  static const Loaded once = load();  // a throw leaves it unset: the next call tries again
  return once;
}

}  // namespace

const TorchBackend& torch_backend() { return *loaded().backend; }

const std::string& torch_backend_path() { return loaded().path; }

}  // namespace qtos::models::detail
