// /usr/sbin/saslauthd as built on a release whose Node.js is a shared library (Debian 13:
// /usr/bin/node is a small program linked to libnode.so.115, and a single executable
// application cannot be made from it). This program is the same kind of small program: it
// starts Node.js in its own process through libnode's node::Start(), so /proc/PID/exe of the
// daemon and of every process it starts is /usr/sbin/saslauthd (start-stop-daemon --exec in
// the init script), and Node.js security updates (package libnode115) reach the daemon at
// its next restart.
//
// Node runs one fixed script, the package's entry point (debian/sea-main.cjs), with this
// program's arguments after it: Node reads its own options only before the script, so no
// argument of ours reaches Node. Every NODE_* environment variable is removed first:
// NODE_OPTIONS=--require ... would run code in the daemon, NODE_PATH and others change
// what it loads.
#include <unistd.h>  // environ
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace node {
int Start(int argc, char *argv[]);  // libnode's entry point (node.h; no V8 headers needed)
}

#ifndef ENTRY_SCRIPT
#define ENTRY_SCRIPT "/usr/lib/saslauthd-ts/sea-main.cjs"
#endif

static const char NODE_PREFIX[] = "NODE_";

// Removes every NODE_* variable (names collected first: unsetenv changes environ).
static void remove_node_variables() {
  std::vector<std::string> names;
  for (char **entry = environ; *entry != nullptr; entry++) {
    if (std::strncmp(*entry, NODE_PREFIX, sizeof NODE_PREFIX - 1) != 0) continue;
    const char *equals = std::strchr(*entry, '=');
    names.emplace_back(*entry, equals != nullptr ? equals - *entry : std::strlen(*entry));
  }
  for (const std::string &name : names) unsetenv(name.c_str());
}

int main(int argc, char *argv[]) {
  remove_node_variables();
  // node::Start keeps pointers into this array for the life of the process.
  std::vector<char *> args;
  args.reserve(static_cast<size_t>(argc) + 2);
  args.push_back(argc > 0 ? argv[0] : const_cast<char *>("saslauthd"));
  args.push_back(const_cast<char *>(ENTRY_SCRIPT));
  for (int i = 1; i < argc; i++) args.push_back(argv[i]);
  args.push_back(nullptr);
  return node::Start(static_cast<int>(args.size() - 1), args.data());
}
