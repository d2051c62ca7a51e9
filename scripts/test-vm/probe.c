/*
 * The test guest's network probe: busybox's nc has no UDP and no connect timeout, and the test
 * needs both, so this is a tiny static tool of our own.
 *
 *   probe udp IP PORT MESSAGE TIMEOUT_MS   send one datagram, wait for one reply
 *   probe tcp IP PORT TIMEOUT_MS           try to connect
 *
 * Prints one line: "ok REPLY" (udp) / "ok" (tcp), "timeout", or "error ERRNO-TEXT"; exit 0 only on ok.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int parse_addr(const char *ip, const char *port, struct sockaddr_in *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((unsigned short)atoi(port));
  return inet_pton(AF_INET, ip, &sa->sin_addr) == 1 ? 0 : -1;
}

static int udp(const struct sockaddr_in *sa, const char *msg, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
    printf("error %s\n", strerror(errno));
    return 1;
  }
  if (send(fd, msg, strlen(msg), 0) < 0) {
    printf("error %s\n", strerror(errno));
    return 1;
  }
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n = poll(&p, 1, timeout_ms);
  if (n == 0) {
    printf("timeout\n");
    return 1;
  }
  char buf[1500];
  ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
  if (got < 0) {
    /* An ICMP port unreachable surfaces here as ECONNREFUSED. */
    printf("error %s\n", strerror(errno));
    return 1;
  }
  buf[got] = 0;
  printf("ok %s\n", buf);
  return 0;
}

static int tcp(const struct sockaddr_in *sa, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    printf("error %s\n", strerror(errno));
    return 1;
  }
  fcntl(fd, F_SETFL, O_NONBLOCK);
  if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0) {
    printf("ok\n");
    return 0;
  }
  if (errno != EINPROGRESS) {
    printf("error %s\n", strerror(errno));
    return 1;
  }
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  if (poll(&p, 1, timeout_ms) == 0) {
    printf("timeout\n");
    return 1;
  }
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    printf("error %s\n", strerror(err));
    return 1;
  }
  printf("ok\n");
  return 0;
}

int main(int argc, char **argv) {
  struct sockaddr_in sa;
  if (argc == 6 && strcmp(argv[1], "udp") == 0 && parse_addr(argv[2], argv[3], &sa) == 0)
    return udp(&sa, argv[4], atoi(argv[5]));
  if (argc == 5 && strcmp(argv[1], "tcp") == 0 && parse_addr(argv[2], argv[3], &sa) == 0)
    return tcp(&sa, atoi(argv[4]));
  fprintf(stderr, "usage: probe udp IP PORT MESSAGE TIMEOUT_MS | probe tcp IP PORT TIMEOUT_MS\n");
  return 2;
}
