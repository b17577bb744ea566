// The qtos executable: everything is built and wired in api/cli.cpp.
#include "api/cli.hpp"

int main(int argc, char** argv) { return qtos::api::cli_main(argc, argv); }
