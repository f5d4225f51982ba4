/*
 * The 64-byte UDP sender of bench/live.ts, compiled by the bench with `gcc -O2` into a temporary
 * folder and run inside the client namespace the bench created:
 *
 *   udp-flood <bench netns> <address> <port> <seconds> <count> <segments> [rate]
 *
 * Sends 18-byte UDP payloads (64-byte frames on the wire, counting the FCS) to address:port with
 * sendmmsg, 64 messages per call, until `count` datagrams are sent or `seconds` have passed,
 * whichever comes first, and prints one JSON line: datagrams the kernel accepted, calls refused,
 * seconds, and this process's CPU time per datagram.
 *
 * `rate` (datagrams per second; absent or 0: as fast as the kernel takes them) paces the sender
 * for a throughput search (RFC 2544, 26.1): about 64 datagrams per sendmmsg call, each call at its
 * due time from the start (sleeping when ahead, sending at once when behind), so the load arrives
 * as an even stream of small bursts rather than one burst per period.
 *
 * `segments` 1: every message is one datagram. `segments` N > 1: every message is N payloads that
 * the kernel splits into N datagrams of 18 bytes (UDP GSO, UDP_SEGMENT): the split happens where
 * the path first meets a device or socket that cannot take the large packet — nfvisor's VXLAN
 * socket (udp_rcv_segment) or the TAP device, which have no GSO — so nfvisor receives N separate
 * 64-byte frames, while the client's stack, veth, bridge and VXLAN encapsulation run once per N.
 * That is what lets one process offer ≥ 500 kpps on this 2-core machine: sent one by one, those
 * kernel steps cost ~5 µs of the sender's CPU per datagram (≤ 200 kpps per core), since every hop
 * up to the receiving socket runs inside its sendmmsg call.
 *
 * Why C compiled at bench time and not a Node child using nfvisor's addon (native/nfvisor_io.c's
 * sendBatch): the addon has no setsockopt for UDP_SEGMENT, and the addon's binary is shared by
 * every process using this tree, so it is not rebuilt for a benchmark; the cost per datagram is the
 * kernel's either way, and gcc is present wherever the addon was built.
 *
 * Safety bounds, checked here and not only by the caller: at most MAX_SECONDS and MAX_COUNT, and
 * the process refuses to run in the bench's own network namespace (`<bench netns>`, what
 * readlink /proc/self/ns/net says there, e.g. net:[4026531840]): the traffic stays among the
 * namespaces the bench made.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define PAYLOAD 18 /* 64 − 4 (FCS) − 14 (Ethernet) − 20 (IPv4) − 8 (UDP) */
#define BATCH 64
#define MAX_SEGMENTS 64
#define MAX_SECONDS 30.0
#define MAX_COUNT 50000000L

static double monotonic(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 7 && argc != 8) {
    fprintf(stderr, "usage: udp-flood <bench netns> <address> <port> <seconds> <count> <segments> [rate]\n");
    return 1;
  }
  char self[64] = {0};
  if (readlink("/proc/self/ns/net", self, sizeof self - 1) < 0 || strcmp(self, argv[1]) == 0) {
    fprintf(stderr, "udp-flood: refusing to send from the bench's own network namespace\n");
    return 1;
  }
  double seconds = atof(argv[4]);
  long count = atol(argv[5]);
  int segments = atoi(argv[6]);
  double rate = argc == 8 ? atof(argv[7]) : 0.0;
  if (seconds > MAX_SECONDS) seconds = MAX_SECONDS;
  if (count > MAX_COUNT) count = MAX_COUNT;
  if (seconds <= 0 || count <= 0 || segments < 1 || segments > MAX_SEGMENTS || rate < 0) {
    fprintf(stderr, "udp-flood: seconds, count and segments (1…%d) must be positive, rate ≥ 0\n", MAX_SEGMENTS);
    return 1;
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
  if (inet_pton(AF_INET, argv[2], &to.sin_addr) != 1) {
    fprintf(stderr, "udp-flood: %s is not an IPv4 address\n", argv[2]);
    return 1;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
    perror("udp-flood: socket");
    return 1;
  }
  int size = PAYLOAD;
  if (segments > 1 && setsockopt(fd, SOL_UDP, UDP_SEGMENT, &size, sizeof size) != 0) {
    perror("udp-flood: UDP_SEGMENT");
    return 3;
  }
  static unsigned char payload[PAYLOAD * MAX_SEGMENTS];
  memset(payload, 0x5a, sizeof payload);
  struct iovec iov[BATCH];
  struct mmsghdr messages[BATCH];
  memset(messages, 0, sizeof messages);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = payload;
    iov[i].iov_len = (size_t)PAYLOAD * (size_t)segments;
    messages[i].msg_hdr.msg_iov = &iov[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  long sent = 0, refused = 0;
  double cpu0 = cpu_seconds();
  double start = monotonic(), now = start;
  /* Messages per call: a whole batch unpaced; paced, about 64 datagrams. */
  long per_call = rate > 0 ? (64 + segments - 1) / segments : BATCH;
  while (now - start < seconds && sent < count) {
    if (rate > 0) {
      double due = start + (double)sent / rate;
      if (due - now > 20e-6) {
        struct timespec pause = {0, (long)((due - now) * 1e9)};
        nanosleep(&pause, NULL);
      }
    }
    long left = (count - sent + segments - 1) / segments;
    if (left > per_call) left = per_call;
    int n = sendmmsg(fd, messages, (unsigned)left, 0);
    if (n > 0)
      sent += (long)n * segments;
    else {
      refused++;
      if (errno == ENOBUFS || errno == EAGAIN) usleep(100); /* a full queue: let the receiver run */
    }
    now = monotonic();
  }
  double cpu = cpu_seconds() - cpu0;
  close(fd);
  printf("{\"sent\":%ld,\"refused\":%ld,\"seconds\":%.6f,\"cpuUsPerDatagram\":%.3f}\n", sent, refused,
         now - start, sent > 0 ? cpu * 1e6 / (double)sent : 0.0);
  return 0;
}
