// `qtos version`: what this binary was built with and what this machine offers.
#include <cstdio>
#include <stdexcept>
#include <string>

#include <boost/version.hpp>
#include <oneapi/tbb/version.h>
#include <sqlite3.h>

#include "api/verbs.hpp"
#include "cpu/backend/device.hpp"
#include "cpu/registry/backends.hpp"
#include "models/torch_info.hpp"

namespace qtos::api {

void verbs_version_register(CLI::App& app, CliContext&) {
  auto* cmd = app.add_subcommand("version", "print versions of qtos, its libraries and the CUDA devices it sees");
  cmd->callback([] {
    const auto& dev = device_report();
    std::string torch_line;
    try {
      const auto torch = models::torch_info();
      torch_line = torch.version + " (" + (torch.cuda_available ? "CUDA available" : "CPU") + ", " + std::to_string(torch.intra_op_threads) +
                   " intra-op threads; " + torch.module + ")";
    } catch (const std::runtime_error& e) {
      torch_line = std::string("not available: ") + e.what();  // the other facts still help to find out why
    }
    std::printf("qtos %s (C++%ld, %s)\n", QTOS_VERSION, __cplusplus / 100 % 100, __VERSION__);
    std::printf("  CUDA backends : %s\n", dev.cuda_compiled ? "compiled in" : "not compiled (QTOS_CUDA=OFF)");
    std::printf("  CUDA devices  : %d %s\n", dev.cuda_devices,
                dev.cuda_devices ? dev.cuda_name.c_str() : ("(" + dev.cuda_error + ")").c_str());
    std::printf("  LibTorch      : %s\n", torch_line.c_str());
    std::printf("  oneTBB        : %d.%d\n", TBB_VERSION_MAJOR, TBB_VERSION_MINOR);
    std::printf("  Boost         : %d.%d.%d\n", BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100);
    std::printf("  SQLite        : %s\n", sqlite3_libversion());
  });
}

}  // namespace qtos::api
