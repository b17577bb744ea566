#pragma once
/// @file The qtos command line: builds the verbs and runs one.

namespace qtos::api {

/// Parses argv, runs the chosen verb and returns the process exit code (0 ok, 1 failure, 2 usage error).
int cli_main(int argc, char** argv);

}  // namespace qtos::api
