/*
 * nfvisor's native I/O addon: TAP/TUN devices and batched UDP (recvmmsg/sendmmsg), for the live
 * ports in src/io/, and huge pages for the host's buffer pool. Loaded through src/io/native-addon.ts, which falls back to node:dgram (and
 * refuses TAP ports) when this file was not built.
 *
 * No JS object is made per packet: every batch call takes a byte array (the caller's ring or the
 * host's pool) plus Uint32Array offsets and lengths, and returns a count. Errors come back as
 * -errno from the batch calls (the packet path never throws) and as thrown Errors with `code`
 * (EPERM, ENOENT, EBUSY, EADDRINUSE, ...) and `syscall` from the open calls.
 *
 * Wake-ups: poll_start() arms a uv_poll on the fd in the main event loop and calls the given
 * function once the fd is readable, then stops watching (one-shot) so a port whose consumer is
 * slow does not spin the loop; the port re-arms it when a read finds the fd empty.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_BATCH 256
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
/* UDP GSO (Linux ≥ 4.18): at most 64 segments and one IP datagram's worth of payload per send. */
#define GSO_MAX_SEGMENTS 64
#define GSO_MAX_BYTES 65000
/* Address records exchanged with JS: [0] family (4|6), [2..3] port (big endian), [4..19] address. */
#define ADDR_RECORD 20

#define CHECK(call)                                                                                    \
  do {                                                                                                 \
    if ((call) != napi_ok) {                                                                           \
      napi_throw_error(env, "NFV_ERR_ADDON", #call " failed");                                        \
      return NULL;                                                                                     \
    }                                                                                                  \
  } while (0)

static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s %s: %s", syscall, what, strerror(err));
  napi_value msg, error, code, sys;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  const char *name = err == EPERM        ? "EPERM"
                     : err == EACCES     ? "EACCES"
                     : err == ENOENT     ? "ENOENT"
                     : err == ENODEV     ? "ENODEV"
                     : err == EBUSY      ? "EBUSY"
                     : err == EINVAL     ? "EINVAL"
                     : err == EADDRINUSE ? "EADDRINUSE"
                     : err == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                     : err == EAFNOSUPPORT  ? "EAFNOSUPPORT"
                     : err == EMFILE     ? "EMFILE"
                                         : "EIO";
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sys);
  napi_set_named_property(env, error, "code", code);
  napi_set_named_property(env, error, "syscall", sys);
  napi_value errnum;
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_throw(env, error);
  return NULL;
}

/* Throws errno's error for `syscall` on `what` after closing `fd`, which the failed call leaves useless. */
static napi_value close_and_throw(napi_env env, int fd, const char *syscall, const char *what) {
  int err = errno;
  close(fd);
  return throw_errno(env, err, syscall, what);
}

static int32_t get_i32(napi_env env, napi_value v) {
  int32_t out = 0;
  napi_get_value_int32(env, v, &out);
  return out;
}

/* A typed array's data and its length in elements of `element` bytes; NULL when not a typed array. */
static void *typed(napi_env env, napi_value v, size_t element, size_t *count) {
  napi_typedarray_type type;
  size_t length;
  void *data = NULL;
  napi_value buffer;
  size_t offset;
  bool is;
  *count = 0;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, &buffer, &offset) != napi_ok) return NULL;
  size_t size = (type == napi_uint8_array || type == napi_int8_array) ? 1
                : (type == napi_uint16_array || type == napi_int16_array) ? 2
                : (type == napi_float64_array) ? 8
                                                : 4;
  *count = length * size / element;
  return data;
}

static napi_value int_value(napi_env env, int64_t n) {
  napi_value out;
  napi_create_int64(env, n, &out);
  return out;
}

/* An interface name argument into `name` (IFNAMSIZ bytes, zero-filled and terminated); its length. */
static bool ifname_arg(napi_env env, napi_value value, char *name, size_t *len) {
  memset(name, 0, IFNAMSIZ);
  return napi_get_value_string_utf8(env, value, name, IFNAMSIZ, len) == napi_ok;
}

/*
 * openTun(name, tap: boolean, offload: boolean) -> [fd, name]: a non-blocking TAP (Ethernet) or TUN
 * (IP) device. With `offload`, every frame read or written is preceded by a 10-byte virtio-net
 * header (IFF_VNET_HDR) and the kernel may hand over TCP super-packets of up to 64 KiB and
 * checksums left partial (TUNSETOFFLOAD: CSUM, TSO4, TSO6, TSO_ECN), as vhost-net gives a VM's
 * virtio NIC; src/io/tap-port.ts reads and writes those headers.
 */
static napi_value open_tun(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ];
  size_t len;
  CHECK(ifname_arg(env, argv[0], name, &len) ? napi_ok : napi_invalid_arg);
  bool tap = true;
  napi_get_value_bool(env, argv[1], &tap);
  bool offload = false;
  if (argc >= 3) napi_get_value_bool(env, argv[2], &offload);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, errno, "open", "/dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = (tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, len < IFNAMSIZ ? len : IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) return close_and_throw(env, fd, "ioctl(TUNSETIFF)", name);
  if (offload && ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) < 0)
    return close_and_throw(env, fd, "ioctl(TUNSETOFFLOAD)", name);
  napi_value out, fdv, namev;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_int32(env, fd, &fdv));
  CHECK(napi_create_string_utf8(env, ifr.ifr_name, NAPI_AUTO_LENGTH, &namev));
  napi_set_element(env, out, 0, fdv);
  napi_set_element(env, out, 1, namev);
  return out;
}

/*
 * setTxQueueLength(name, length): the device's transmit queue length (ip link … txqueuelen). For a
 * TAP/TUN device that is the queue of frames waiting for the reader: what it absorbs while the
 * reader sleeps. Throws with `code` (ENODEV, EPERM, EINVAL) and `syscall`.
 */
static napi_value set_tx_queue_length(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ];
  size_t len;
  CHECK(ifname_arg(env, argv[0], name, &len) ? napi_ok : napi_invalid_arg);
  int32_t length = get_i32(env, argv[1]);
  if (length <= 0) return throw_errno(env, EINVAL, "ioctl(SIOCSIFTXQLEN)", name);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return throw_errno(env, errno, "socket", "udp");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, len < IFNAMSIZ ? len : IFNAMSIZ - 1);
  ifr.ifr_qlen = length;
  int rc = ioctl(s, SIOCSIFTXQLEN, &ifr);
  int err = errno;
  close(s);
  if (rc < 0) return throw_errno(env, err, "ioctl(SIOCSIFTXQLEN)", name);
  return NULL;
}

/*
 * A small io_uring per thread, for TAP/TUN batches: a TAP fd has no recvmmsg/sendmmsg, and one
 * read() or write() per frame is one syscall per frame (~1.1 µs each on the development VM, whose
 * syscalls cross the hypervisor). A batch is queued as linked requests (IOSQE_IO_HARDLINK: they run
 * one after another, in order, whatever each returns) and submitted and reaped with one
 * io_uring_enter. Without io_uring (an old kernel, a sandbox that forbids it, NFVISOR_NO_URING=1)
 * the calls below loop over read()/write() as before.
 */
struct uring {
  int fd; /* ≥ 0 ready; -1 not set up yet; -2 unavailable */
  unsigned *sq_tail, *sq_mask, *sq_array;
  struct io_uring_sqe *sqes;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
};
static __thread struct uring ring = {.fd = -1};

static bool uring_ready(void) {
  if (ring.fd >= 0) return true;
  if (ring.fd == -2) return false;
  ring.fd = -2;
  if (getenv("NFVISOR_NO_URING")) return false;
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  int fd = (int)syscall(__NR_io_uring_setup, MAX_BATCH, &p);
  if (fd < 0) return false;
  size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && cq_size > sq_size) sq_size = cq_size;
  uint8_t *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  uint8_t *cq = single ? sq
                       : mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
  void *sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
    close(fd); /* the mappings that were made stay: a few pages, once per thread */
    return false;
  }
  ring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
  ring.sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  ring.sq_array = (unsigned *)(sq + p.sq_off.array);
  ring.sqes = sqes;
  ring.cq_head = (unsigned *)(cq + p.cq_off.head);
  ring.cq_tail = (unsigned *)(cq + p.cq_off.tail);
  ring.cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  ring.cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  ring.fd = fd;
  return true;
}

/* Stops using the ring in this thread (closing it cancels whatever it still held): read()/write() from now on. */
static void uring_off(void) {
  close(ring.fd);
  ring.fd = -2;
}

/*
 * Runs `count` (≤ MAX_BATCH) reads or writes of `fd` through the ring, request i on
 * bytes[offsets[i] .. + (sizes ? sizes[i] : room)); results[i] = what read()/write() would have
 * returned (or -errno). Returns 0, or -errno when the ring failed: the ring is then given up for
 * this thread and the caller does the batch with read()/write(). A file that cannot be asked not
 * to wait (no FMODE_NOWAIT: every request fails with EOPNOTSUPP, doing nothing) gives it up too.
 */
static int uring_batch(uint8_t opcode, int fd, uint8_t *bytes, const uint32_t *offsets, const uint32_t *sizes,
                       uint32_t room, int32_t count, int32_t *results) {
  unsigned tail = *ring.sq_tail; /* this thread is the ring's only submitter */
  unsigned mask = *ring.sq_mask;
  for (int32_t i = 0; i < count; i++) {
    unsigned index = (tail + (unsigned)i) & mask;
    struct io_uring_sqe *sqe = &ring.sqes[index];
    memset(sqe, 0, sizeof *sqe);
    sqe->opcode = opcode;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)(bytes + offsets[i]);
    sqe->len = sizes ? sizes[i] : room;
    sqe->user_data = (uint64_t)i;
    /* RWF_NOWAIT: "nothing now" completes as -EAGAIN. Without it io_uring would wait for a frame
     * (it retries an O_NONBLOCK read of a pollable file when the file becomes readable). */
    sqe->rw_flags = RWF_NOWAIT;
    if (i + 1 < count) sqe->flags = IOSQE_IO_HARDLINK;
    ring.sq_array[index] = index;
  }
  __atomic_store_n(ring.sq_tail, tail + (unsigned)count, __ATOMIC_RELEASE);
  int32_t done = 0;
  unsigned to_submit = (unsigned)count;
  while (done < count) {
    long r = syscall(__NR_io_uring_enter, ring.fd, to_submit, (unsigned)(count - done), IORING_ENTER_GETEVENTS, NULL, 0);
    if (r < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) {
      int err = errno;
      uring_off();
      return -err;
    }
    if (r > 0) to_submit -= (unsigned)r > to_submit ? to_submit : (unsigned)r;
    unsigned head = *ring.cq_head;
    unsigned ctail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
    for (; head != ctail; head++) {
      struct io_uring_cqe *cqe = &ring.cqes[head & *ring.cq_mask];
      if (cqe->user_data < (uint64_t)count) results[cqe->user_data] = cqe->res;
      done++;
    }
    __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
  }
  if (results[0] == -EOPNOTSUPP) {
    uring_off();
    return -EOPNOTSUPP;
  }
  return 0;
}

/*
 * readFrames(fd, bytes, offsets, lengths, count, room) -> frames read, or -errno.
 * Reads up to `count` frames, frame i into bytes[offsets[i] .. + room); lengths[i] = its length.
 * Through the ring, all `count` reads are made and the frames moved together in arrival order;
 * without it, the loop stops at the first EAGAIN. A frame that fills the whole room may have been
 * cut: lengths[i] is then room + 1 so the caller counts it oversize.
 */
static napi_value read_frames(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = get_i32(env, argv[0]);
  size_t size, noff, nlen;
  uint8_t *bytes = typed(env, argv[1], 1, &size);
  uint32_t *offsets = typed(env, argv[2], 4, &noff);
  uint32_t *lengths = typed(env, argv[3], 4, &nlen);
  int32_t count = get_i32(env, argv[4]);
  int32_t room = get_i32(env, argv[5]);
  if (!bytes || !offsets || !lengths || count < 0 || room <= 0 || (size_t)count > noff || (size_t)count > nlen)
    return int_value(env, -EINVAL);
  if (count > MAX_BATCH) count = MAX_BATCH;
  for (int32_t i = 0; i < count; i++)
    if ((size_t)offsets[i] + (size_t)room > size) return int_value(env, -EINVAL);
  int32_t results[MAX_BATCH];
  if (count > 1 && uring_ready() && uring_batch(IORING_OP_READ, fd, bytes, offsets, NULL, (uint32_t)room, count, results) == 0) {
    /* The reads ran one after another, so frames are in arrival order; one that found the device
     * empty leaves a gap a later read (a frame that arrived meanwhile) may follow: close it. */
    int32_t n = 0;
    for (int32_t i = 0; i < count; i++) {
      if (results[i] <= 0) continue;
      if (i != n) memmove(bytes + offsets[n], bytes + offsets[i], (size_t)results[i]);
      lengths[n++] = results[i] >= room ? (uint32_t)room + 1 : (uint32_t)results[i];
    }
    if (n == 0 && results[0] < 0 && results[0] != -EAGAIN && results[0] != -EINTR) return int_value(env, results[0]);
    return int_value(env, n);
  }
  int32_t n = 0;
  for (; n < count; n++) {
    ssize_t r = read(fd, bytes + offsets[n], (size_t)room);
    if (r < 0) {
      if (errno == EINTR) {
        n--;
        continue;
      }
      if (errno == EAGAIN || n > 0) break;
      return int_value(env, -errno);
    }
    lengths[n] = r >= room ? (uint32_t)room + 1 : (uint32_t)r;
  }
  return int_value(env, n);
}

/*
 * writeFrames(fd, bytes, offsets, lengths, count) -> frames written, or -errno when none was.
 * A frame the kernel refuses (EIO while the link is down, EINVAL) is skipped, not retried.
 */
static napi_value write_frames(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = get_i32(env, argv[0]);
  size_t size, noff, nlen;
  uint8_t *bytes = typed(env, argv[1], 1, &size);
  uint32_t *offsets = typed(env, argv[2], 4, &noff);
  uint32_t *lengths = typed(env, argv[3], 4, &nlen);
  int32_t count = get_i32(env, argv[4]);
  if (!bytes || !offsets || !lengths || count < 0 || (size_t)count > noff || (size_t)count > nlen)
    return int_value(env, -EINVAL);
  if (count > MAX_BATCH) count = MAX_BATCH;
  int32_t written = 0;
  int last = 0;
  bool fits = true;
  for (int32_t i = 0; i < count; i++)
    if ((size_t)offsets[i] + (size_t)lengths[i] > size) fits = false;
  int32_t results[MAX_BATCH];
  if (fits && count > 1 && uring_ready() &&
      uring_batch(IORING_OP_WRITE, fd, bytes, offsets, lengths, 0, count, results) == 0) {
    for (int32_t i = 0; i < count; i++) {
      if (results[i] >= 0) written++;
      else last = -results[i];
    }
    return int_value(env, written > 0 ? written : -last);
  }
  for (int32_t i = 0; i < count; i++) {
    if ((size_t)offsets[i] + (size_t)lengths[i] > size) {
      last = EINVAL;
      continue;
    }
    ssize_t r;
    do r = write(fd, bytes + offsets[i], lengths[i]);
    while (r < 0 && errno == EINTR);
    if (r < 0) last = errno;
    else written++;
  }
  return int_value(env, written > 0 || count == 0 ? written : -last);
}

static int sockaddr_from(napi_env env, napi_value address, int port, bool ipv6, struct sockaddr_storage *ss,
                         socklen_t *sl) {
  char text[64] = {0};
  size_t len;
  napi_get_value_string_utf8(env, address, text, sizeof text, &len);
  memset(ss, 0, sizeof *ss);
  if (ipv6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, text, &a->sin6_addr) != 1) return -1;
    *sl = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, text, &a->sin_addr) != 1) return -1;
    *sl = sizeof *a;
  }
  return 0;
}

/* udpOpen(ipv6, address, port, receiveBuffer) -> [fd, boundPort]: a non-blocking bound UDP socket. */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool ipv6 = false;
  napi_get_value_bool(env, argv[0], &ipv6);
  int port = get_i32(env, argv[2]);
  int rcvbuf = get_i32(env, argv[3]);
  struct sockaddr_storage ss;
  socklen_t sl;
  if (sockaddr_from(env, argv[1], port, ipv6, &ss, &sl) < 0) return throw_errno(env, EINVAL, "bind", "address");
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket", "udp");
  /* The size asked for, past net.core.rmem_max where the process may (CAP_NET_ADMIN), as
   * wireguard-go does; otherwise what rmem_max allows. */
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) return close_and_throw(env, fd, "bind", "udp");
  struct sockaddr_storage bound;
  socklen_t bl = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &bl);
  int bound_port = ntohs(ipv6 ? ((struct sockaddr_in6 *)&bound)->sin6_port : ((struct sockaddr_in *)&bound)->sin_port);
  napi_value out, fdv, portv;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_int32(env, fd, &fdv));
  CHECK(napi_create_int32(env, bound_port, &portv));
  napi_set_element(env, out, 0, fdv);
  napi_set_element(env, out, 1, portv);
  return out;
}

/* udpConnect(fd, ipv6, address, port): fixes the destination so sendBatch needs no addresses. */
static napi_value udp_connect(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = get_i32(env, argv[0]);
  bool ipv6 = false;
  napi_get_value_bool(env, argv[1], &ipv6);
  struct sockaddr_storage ss;
  socklen_t sl;
  if (sockaddr_from(env, argv[2], get_i32(env, argv[3]), ipv6, &ss, &sl) < 0)
    return throw_errno(env, EINVAL, "connect", "address");
  if (connect(fd, (struct sockaddr *)&ss, sl) < 0) return throw_errno(env, errno, "connect", "udp");
  return NULL;
}

static void record_from(uint8_t *rec, const struct sockaddr_storage *ss) {
  memset(rec, 0, ADDR_RECORD);
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    rec[0] = 6;
    memcpy(rec + 2, &a->sin6_port, 2);
    memcpy(rec + 4, &a->sin6_addr, 16);
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    rec[0] = 4;
    memcpy(rec + 2, &a->sin_port, 2);
    memcpy(rec + 4, &a->sin_addr, 4);
  }
}

static socklen_t sockaddr_from_record(const uint8_t *rec, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (rec[0] == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    memcpy(&a->sin6_port, rec + 2, 2);
    memcpy(&a->sin6_addr, rec + 4, 16);
    return sizeof *a;
  }
  struct sockaddr_in *a = (struct sockaddr_in *)ss;
  a->sin_family = AF_INET;
  memcpy(&a->sin_port, rec + 2, 2);
  memcpy(&a->sin_addr, rec + 4, 4);
  return sizeof *a;
}

/*
 * recvBatch(fd, bytes, offsets, lengths, count, room, senders) -> datagrams, or -errno.
 * One recvmmsg(MSG_DONTWAIT) for up to `count` datagrams; datagram i lands at bytes[offsets[i]..],
 * its length in lengths[i] (room + 1 when it was cut), its sender in senders[i * 20 ..].
 */
static napi_value recv_batch(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = get_i32(env, argv[0]);
  size_t size, noff, nlen, nrec;
  uint8_t *bytes = typed(env, argv[1], 1, &size);
  uint32_t *offsets = typed(env, argv[2], 4, &noff);
  uint32_t *lengths = typed(env, argv[3], 4, &nlen);
  int32_t count = get_i32(env, argv[4]);
  int32_t room = get_i32(env, argv[5]);
  uint8_t *senders = typed(env, argv[6], ADDR_RECORD, &nrec);
  if (count > MAX_BATCH) count = MAX_BATCH;
  if (!bytes || !offsets || !lengths || !senders || count <= 0 || room <= 0 || (size_t)count > noff ||
      (size_t)count > nlen || (size_t)count > nrec)
    return int_value(env, -EINVAL);
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iovs[MAX_BATCH];
  struct sockaddr_storage from[MAX_BATCH];
  for (int32_t i = 0; i < count; i++) {
    if ((size_t)offsets[i] + (size_t)room > size) {
      count = i;
      break;
    }
    iovs[i].iov_base = bytes + offsets[i];
    iovs[i].iov_len = (size_t)room;
    memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof from[i];
  }
  if (count == 0) return int_value(env, -EINVAL);
  int n = recvmmsg(fd, msgs, (unsigned)count, MSG_DONTWAIT, NULL);
  if (n < 0) return int_value(env, errno == EAGAIN || errno == EINTR ? 0 : -errno);
  for (int i = 0; i < n; i++) {
    lengths[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? (uint32_t)room + 1 : msgs[i].msg_len;
    record_from(senders + (size_t)i * ADDR_RECORD, &from[i]);
  }
  return int_value(env, n);
}

/*
 * sendBatch(fd, bytes, offsets, lengths, count, destinations|null) -> datagrams sent, or -errno.
 * One sendmmsg (repeated while it makes progress) for `count` datagrams; with `destinations`,
 * datagram i goes to the address record destinations[i * 20 ..], otherwise to the connected peer.
 *
 * Runs of datagrams of one size to one destination leave as one UDP GSO message (UDP_SEGMENT, up to
 * 64 of them; the last of a run may be shorter): the stack is crossed once per run and the kernel
 * cuts the datagrams apart where it must (a receiving socket sees them one by one). A kernel that
 * refuses GSO turns it off for the process and the batch is sent one message per datagram;
 * NFVISOR_NO_GSO=1 turns it off from the start (to measure what it brings).
 */
static int gso_state = -1; /* -1 not decided yet, 0 off, 1 on */

static int same_destination(const uint8_t *dests, int32_t a, int32_t b) {
  return !dests || memcmp(dests + (size_t)a * ADDR_RECORD, dests + (size_t)b * ADDR_RECORD, ADDR_RECORD) == 0;
}

static napi_value send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = get_i32(env, argv[0]);
  size_t size, noff, nlen, nrec = 0;
  uint8_t *bytes = typed(env, argv[1], 1, &size);
  uint32_t *offsets = typed(env, argv[2], 4, &noff);
  uint32_t *lengths = typed(env, argv[3], 4, &nlen);
  int32_t count = get_i32(env, argv[4]);
  uint8_t *dests = typed(env, argv[5], ADDR_RECORD, &nrec);
  if (count > MAX_BATCH) count = MAX_BATCH;
  if (!bytes || !offsets || !lengths || count < 0 || (size_t)count > noff || (size_t)count > nlen ||
      (dests && (size_t)count > nrec))
    return int_value(env, -EINVAL);
  if (gso_state < 0) {
    const char *off = getenv("NFVISOR_NO_GSO");
    gso_state = off && off[0] == '1' ? 0 : 1;
  }
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iovs[MAX_BATCH];
  struct sockaddr_storage to[MAX_BATCH];
  /* Datagrams carried by each message, and the UDP_SEGMENT control block of a GSO message. */
  int32_t carried[MAX_BATCH];
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } control[MAX_BATCH];
  for (int32_t i = 0; i < count; i++) {
    if ((size_t)offsets[i] + (size_t)lengths[i] > size) return int_value(env, -EINVAL);
    iovs[i].iov_base = bytes + offsets[i];
    iovs[i].iov_len = lengths[i];
  }
  int use_gso = gso_state == 1;
  for (;;) {
    int32_t nmsgs = 0;
    for (int32_t i = 0; i < count;) {
      /* A run: equal lengths (the last may be shorter), one destination, within GSO's limits. */
      int32_t run = 1;
      size_t total = lengths[i];
      if (use_gso && lengths[i] > 0) {
        while (i + run < count && run < GSO_MAX_SEGMENTS && lengths[i + run] <= lengths[i] &&
               lengths[i + run] > 0 && total + lengths[i + run] <= GSO_MAX_BYTES &&
               same_destination(dests, i, i + run)) {
          total += lengths[i + run];
          run++;
          if (lengths[i + run - 1] < lengths[i]) break; /* a shorter one ends the run */
        }
      }
      struct msghdr *h = &msgs[nmsgs].msg_hdr;
      memset(h, 0, sizeof *h);
      h->msg_iov = &iovs[i];
      h->msg_iovlen = (size_t)run;
      if (dests) {
        h->msg_name = &to[nmsgs];
        h->msg_namelen = sockaddr_from_record(dests + (size_t)i * ADDR_RECORD, &to[nmsgs]);
      }
      if (run > 1) {
        h->msg_control = control[nmsgs].buf;
        h->msg_controllen = sizeof control[nmsgs].buf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(h);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t segment = (uint16_t)lengths[i];
        memcpy(CMSG_DATA(cm), &segment, sizeof segment);
      }
      carried[nmsgs++] = run;
      i += run;
    }
    int32_t sent_msgs = 0, sent = 0;
    int refused = 0;
    while (sent_msgs < nmsgs) {
      int n = sendmmsg(fd, msgs + sent_msgs, (unsigned)(nmsgs - sent_msgs), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (sent > 0) break;
        if (carried[sent_msgs] > 1 &&
            (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOPROTOOPT)) {
          /* Refused as GSO: EINVAL is a segment too large for the route (this batch goes plain),
           * the others a kernel or device without UDP GSO (plain from now on). */
          if (errno != EINVAL) gso_state = 0;
          refused = 1;
          break;
        }
        return int_value(env, -errno);
      }
      if (n == 0) break;
      for (int k = 0; k < n; k++) sent += carried[sent_msgs + k];
      sent_msgs += n;
    }
    if (!refused) return int_value(env, sent);
    use_gso = 0;
  }
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = get_i32(env, argv[0]);
  if (fd > 2) close(fd);
  return NULL;
}

/* A one-shot readability watch on an fd, re-armed by the port. */
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int active;
  int closed;    /* watchStop() or the finalizer released the poll handle */
  int uv_closed; /* libuv is done with it */
  int finalized; /* the JS handle was collected */
} Watch;

/* The Watch is freed once both libuv and the JS handle are done with it. */
static void watch_closed(uv_handle_t *handle) {
  Watch *w = handle->data;
  w->uv_closed = 1;
  if (w->finalized) free(w);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  Watch *w = handle->data;
  uv_poll_stop(&w->poll);
  w->active = 0;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, global, arg, result;
  if (napi_get_reference_value(env, w->callback, &callback) == napi_ok && callback != NULL) {
    napi_get_global(env, &global);
    napi_create_int32(env, status, &arg);
    if (napi_make_callback(env, w->context, global, callback, 1, &arg, &result) != napi_ok) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) {
        napi_value error;
        napi_get_and_clear_last_exception(env, &error);
        napi_fatal_exception(env, error);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

static void watch_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Watch *w = data;
  /* The JS handle is gone: release the poll handle if watchStop() was never called. */
  if (!w->closed) {
    w->closed = 1;
    napi_delete_reference(env, w->callback);
    napi_async_destroy(env, w->context);
    uv_close((uv_handle_t *)&w->poll, watch_closed);
  }
  w->finalized = 1;
  if (w->uv_closed) free(w);
}

/* watchCreate(fd, callback) -> handle: nothing is watched until watchArm(handle). */
static napi_value watch_create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd = get_i32(env, argv[0]);
  struct uv_loop_s *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  Watch *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, ENOMEM, "calloc", "watch");
  w->env = env;
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc != 0) {
    free(w);
    return throw_errno(env, -rc, "uv_poll_init", "fd");
  }
  w->poll.data = w;
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_value name;
  napi_create_string_utf8(env, "nfvisor:watch", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &w->context);
  napi_value handle;
  CHECK(napi_create_external(env, w, watch_finalize, NULL, &handle));
  return handle;
}

static Watch *watch_of(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok) return NULL;
  return data;
}

/* watchArm(handle): call back once when the fd is readable. Idempotent. */
static napi_value watch_arm(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Watch *w = watch_of(env, argv[0]);
  if (w && !w->closed && !w->active) {
    w->active = 1;
    uv_poll_start(&w->poll, UV_READABLE, on_readable);
  }
  return NULL;
}

/* watchStop(handle): stops and releases the watch; call before closing the fd. */
static napi_value watch_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  Watch *w = watch_of(env, argv[0]);
  if (w && !w->closed) {
    w->closed = 1;
    w->active = 0;
    uv_poll_stop(&w->poll);
    napi_delete_reference(env, w->callback);
    napi_async_destroy(env, w->context);
    uv_close((uv_handle_t *)&w->poll, watch_closed);
  }
  return NULL;
}

/*
 * adviseHugePages(bytes) -> bytes advised, or -errno. For memory that holds only zeros so far (a
 * buffer pool's slots, just allocated): asks for transparent huge pages under its 2 MiB-aligned
 * part (MADV_HUGEPAGE; Debian enables THP only where asked) and drops the small pages already
 * there (MADV_DONTNEED: they read as zeros again), so the next faults bring huge pages.
 * Why: a 64-byte packet in a 2 KiB slot is a 4 KiB page per two packets, and a chain of guests
 * on other cores touches each one again: thousands of pages in flight, more than the TLB holds
 * (DPDK's mbuf pools live in huge pages for the same reason).
 */
static napi_value advise_huge_pages(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  size_t size;
  uint8_t *bytes = argc == 1 ? typed(env, argv[0], 1, &size) : NULL;
  if (!bytes) return int_value(env, -EINVAL);
  const uintptr_t huge = (uintptr_t)2 << 20;
  uintptr_t start = ((uintptr_t)bytes + huge - 1) & ~(huge - 1);
  uintptr_t end = ((uintptr_t)bytes + size) & ~(huge - 1);
  if (end <= start) return int_value(env, 0);
  if (madvise((void *)start, end - start, MADV_HUGEPAGE) != 0) return int_value(env, -errno);
  if (madvise((void *)start, end - start, MADV_DONTNEED) != 0) return int_value(env, -errno);
  return int_value(env, (int64_t)(end - start));
}

/*
 * fixMmapThreshold(bytes) -> 1, or 0 when glibc refuses. Every malloc of at least `bytes` gets its
 * own mapping, returned to the kernel when freed. Why: glibc raises that threshold on its own each
 * time a mapped block is freed (up to 32 MiB), so after the first pool, ring or guest heap block
 * of a finished host was freed, the next ones came from the malloc arenas, which do not give memory
 * back: the chaos soak, host after host and ~200 guests killed a round, grew from 192 to 449 MiB in
 * six rounds, against 108 to 145 MiB with the threshold fixed. Setting it turns that off.
 */
static napi_value fix_mmap_threshold(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t bytes = 0;
  if (argc != 1 || napi_get_value_int64(env, argv[0], &bytes) != napi_ok || bytes <= 0 || bytes > INT32_MAX)
    return int_value(env, 0);
  return int_value(env, mallopt(M_MMAP_THRESHOLD, (int)bytes) == 1 ? 1 : 0);
}

/*
 * setBatchScheduling(on) -> the calling thread's policy before the call, or -errno. With `on`, a
 * SCHED_OTHER thread becomes SCHED_BATCH (another policy, the user's choice, is left alone); with
 * `off`, a SCHED_BATCH thread goes back to SCHED_OTHER. Threads it starts afterwards inherit it
 * (guest workers, V8's and libuv's helpers). Why: a `direct` chain is more busy threads than cores
 * (the host and a guest per NF on two vCPUs), and under SCHED_OTHER each wake-up of one — a
 * producer's notify — preempts another mid-burst. SCHED_BATCH threads do not preempt on wake-up
 * (sched(7): "mildly disfavored in scheduling decisions"), so each stage finishes its burst:
 * fw -> NAT -> LB `direct`, p50 1.4-2.0 -> 1.2-1.4 ms, p99 5.8-8.2 -> 3.4-5.8 ms, and a median
 * 5 % more packets (11 interleaved pairs, 2026-12-07).
 */
static napi_value set_batch_scheduling(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool on = false;
  if (argc != 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok) return int_value(env, -EINVAL);
  /* pid 0: the calling thread (Linux schedules threads, not processes). */
  int before = sched_getscheduler(0);
  if (before < 0) return int_value(env, -errno);
  int wanted = on ? (before == SCHED_OTHER ? SCHED_BATCH : before) : (before == SCHED_BATCH ? SCHED_OTHER : before);
  if (wanted != before) {
    struct sched_param param = {.sched_priority = 0};
    if (sched_setscheduler(0, wanted, &param) != 0) return int_value(env, -errno);
  }
  return int_value(env, before);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"openTun", NULL, open_tun, NULL, NULL, NULL, napi_default, NULL},
      {"setTxQueueLength", NULL, set_tx_queue_length, NULL, NULL, NULL, napi_default, NULL},
      {"readFrames", NULL, read_frames, NULL, NULL, NULL, napi_default, NULL},
      {"writeFrames", NULL, write_frames, NULL, NULL, NULL, napi_default, NULL},
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_default, NULL},
      {"udpConnect", NULL, udp_connect, NULL, NULL, NULL, napi_default, NULL},
      {"recvBatch", NULL, recv_batch, NULL, NULL, NULL, napi_default, NULL},
      {"sendBatch", NULL, send_batch, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
      {"watchCreate", NULL, watch_create, NULL, NULL, NULL, napi_default, NULL},
      {"watchArm", NULL, watch_arm, NULL, NULL, NULL, napi_default, NULL},
      {"watchStop", NULL, watch_stop, NULL, NULL, NULL, napi_default, NULL},
      {"adviseHugePages", NULL, advise_huge_pages, NULL, NULL, NULL, napi_default, NULL},
      {"fixMmapThreshold", NULL, fix_mmap_threshold, NULL, NULL, NULL, napi_default, NULL},
      {"setBatchScheduling", NULL, set_batch_scheduling, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
