/*
 * Linked into /usr/sbin/saslauthd when it is a Node single executable (Debian 12; see
 * debian/build-sea): a DT_NEEDED library whose constructor runs before the node binary's
 * main(), and removes every NODE_* variable from the environment. A single executable
 * reads NODE_OPTIONS like node does (NODE_OPTIONS=--require … would run code in the daemon,
 * as root), and sasl2-bin's init script passes its caller's environment on; by the time our
 * own first module runs it is too late. (On Debian 13 the launcher,
 * debian/saslauthd-launcher.cc, does the same in its main().)
 */
#include <stdlib.h>
#include <string.h>

extern char **environ;

/** Longest variable name removed; a longer NODE_* name is cut (and unset by its prefix). */
#define MAX_NAME 255

__attribute__((constructor)) static void remove_node_variables(void) {
  /* unsetenv() changes environ: look again from the start after each removal. */
  for (;;) {
    char **entry = environ;
    while (entry != NULL && *entry != NULL && strncmp(*entry, "NODE_", 5) != 0) entry++;
    if (entry == NULL || *entry == NULL) return;
    char name[MAX_NAME + 1];
    const char *equals = strchr(*entry, '=');
    size_t length = equals != NULL ? (size_t)(equals - *entry) : strlen(*entry);
    if (length > MAX_NAME) length = MAX_NAME;
    memcpy(name, *entry, length);
    name[length] = '\0';
    if (unsetenv(name) != 0) return; /* cannot happen for a valid name; never loop forever */
  }
}
