/*
 * The floor of the benchmark: a server on the same kind of socket that answers `OK` to
 * every connection without looking at the request (one thread, epoll). No daemon can be
 * faster on this socket with this client, so its figures bound what the load generator can
 * measure. Usage: floor-server PATH   (runs until killed)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Same listen backlog as our daemon (capped by net.core.somaxconn). */
#define BACKLOG 4096
#define EVENTS 256

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: floor-server PATH\n");
    return 1;
  }
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  if (strlen(argv[1]) >= sizeof address.sun_path) return 1;
  strcpy(address.sun_path, argv[1]);
  unlink(argv[1]);
  int server = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (server < 0 || bind(server, (struct sockaddr *)&address, sizeof address) != 0 || listen(server, BACKLOG) != 0) {
    perror("floor-server");
    return 1;
  }
  int epoll = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event event = {.events = EPOLLIN, .data.fd = server};
  epoll_ctl(epoll, EPOLL_CTL_ADD, server, &event);
  static const char reply[] = {0, 2, 'O', 'K'};
  struct epoll_event events[EVENTS];
  char buffer[2048];
  for (;;) {
    int n = epoll_wait(epoll, events, EVENTS, -1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == server) {
        int client;
        while ((client = accept4(server, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          struct epoll_event readable = {.events = EPOLLIN, .data.fd = client};
          epoll_ctl(epoll, EPOLL_CTL_ADD, client, &readable);
        }
        continue;
      }
      ssize_t got = read(fd, buffer, sizeof buffer);
      if (got > 0 && write(fd, reply, sizeof reply) < 0) perror("write");
      close(fd);
    }
  }
}
