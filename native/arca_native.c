/*
 * arca's native helpers: the few system calls Node cannot make, so that the hot paths of the
 * network layer need no exec at all.
 *
 *   netlinkOpen(nsPath?)                 a NETLINK_ROUTE socket bound in a namespace -> fd
 *   netlinkRequest(fd, buf, terminals)   sends buf, reads until `terminals` ACK/ERROR/DONE -> Buffer
 *   closeFd(fd)
 *   nftAvailable()                       libnftables.so.1 could be loaded (dlopen, no -dev needed)
 *   nftRun(text, nsPath?)                runs an nft script in-process -> [rc, output, errors]
 *   writeFileIn(nsPath, path, data)      writes a (/proc/sys) file as seen from a namespace
 *   mount(src, target, fstype, flags, data) / umount(target, flags)
 *   socketIn(nsPath, kind, address, port) made in a namespace -> fd: 'udp' bound there, 'tcp' bound
 *                                        and listening, 'tcp-connect' connecting (non-blocking),
 *                                        'udp-connect' connected to address:port (one peer only)
 *   udpWatch(fd, onMessage, options?)    delivers datagrams to onMessage(msg, address, port, rxTime)
 *                                        from the main loop -> a port handle; options.onError(code)
 *                                        hears a connected socket's ICMP errors, options.timestamps
 *                                        adds the kernel's receive time (CLOCK_MONOTONIC ns, bigint)
 *   udpSend(port, msg, address, port) / udpClose(port)
 *   udpSendMany(port, buf, spans, count, status?) sends count datagrams, buf[spans[2i], +spans[2i+1]),
 *                                        on a connected socket with sendmmsg -> how many went
 *   udpLocalPort(port)                   the port the socket is bound to
 *   busyPoll(ms)                         the main loop polls without sleeping (epoll_wait with timeout
 *                                        0) until at least ms from now
 *   raiseUdpBuffers(pid, bytes)          another process's UDP sockets get buffers of at least
 *                                        bytes -> [udp sockets, raised]
 *
 * Everything that may block (netlink requests, nft, mounts) runs on libuv's thread pool and
 * returns a promise. Entering a network namespace is per thread (setns(CLONE_NEWNET) is allowed in
 * a multi-threaded process); every entry is paired with a return to the thread's own namespace,
 * and a failed return aborts rather than leave a pool thread in a container's namespace.
 *
 * Sockets made in a container's namespace stay in it after the thread returns (a socket belongs to
 * the namespace it was created in). Node can adopt a TCP listener by fd, but not a UDP socket:
 * those are read here, on the main thread, from a uv_poll handle on Node's own loop (no thread
 * and no copy beyond one Buffer per datagram).
 *
 * Message encoding and decoding stay in TypeScript (src/sys/netlink.ts): this file only moves bytes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define CHECK(env, call)                                                                 \
  do {                                                                                   \
    if ((call) != napi_ok) {                                                             \
      napi_throw_error((env), NULL, "arca_native: N-API call failed: " #call);           \
      return NULL;                                                                       \
    }                                                                                    \
  } while (0)

/* ---- errors ------------------------------------------------------------------------------- */

static const char *errno_code(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case EBUSY: return "EBUSY";
    case ENODEV: return "ENODEV";
    case EACCES: return "EACCES";
    case ENOMEM: return "ENOMEM";
    case EBADF: return "EBADF";
    case ENOTDIR: return "ENOTDIR";
    case ESRCH: return "ESRCH";
    case EAGAIN: return "EAGAIN";
    case ENOBUFS: return "ENOBUFS";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EIO: return "EIO";
    case EMSGSIZE: return "EMSGSIZE";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENETDOWN: return "ENETDOWN";
    case ENOTCONN: return "ENOTCONN";
    case EDESTADDRREQ: return "EDESTADDRREQ";
    default: return "EUNKNOWN";
  }
}

static napi_value make_error(napi_env env, int e, const char *what) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_value code, text, err, num;
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &err);
  napi_create_int32(env, -e, &num);
  napi_set_named_property(env, err, "errno", num);
  return err;
}

/* ---- namespaces --------------------------------------------------------------------------- */

/* Enters the namespace at `path` on this thread; *prev gets the thread's own (or -1 if path is
 * empty). Returns 0 or an errno. */
static int enter_netns(const char *path, int *prev) {
  *prev = -1;
  if (path == NULL || path[0] == '\0') return 0;
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return errno;
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(self);
    return e;
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(target);
    close(self);
    return e;
  }
  close(target);
  *prev = self;
  return 0;
}

static void leave_netns(int prev) {
  if (prev < 0) return;
  if (setns(prev, CLONE_NEWNET) < 0) {
    /* A pool thread left in a container's namespace would act there later: stop instead. */
    fprintf(stderr, "arca_native: cannot return to the daemon's network namespace: %s\n", strerror(errno));
    abort();
  }
  close(prev);
}

/* socket(2) as the namespace at `path` sees it (the socket stays there); the fd, or -1 with *err set. */
static int socket_in_netns(const char *path, int domain, int type, int protocol, int *err) {
  int prev, fd = -1;
  *err = enter_netns(path, &prev);
  if (*err) return -1;
  fd = socket(domain, type, protocol);
  if (fd < 0) *err = errno;
  leave_netns(prev);
  return fd;
}

/* ---- argument helpers --------------------------------------------------------------------- */

/* A JS string (or null/undefined -> NULL) as a malloc'd C string. */
static int get_string(napi_env env, napi_value v, char **out) {
  napi_valuetype t;
  *out = NULL;
  if (napi_typeof(env, v, &t) != napi_ok) return -1;
  if (t == napi_undefined || t == napi_null) return 0;
  if (t != napi_string) return -1;
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return -1;
  *out = malloc(len + 1);
  if (*out == NULL) return -1;
  if (napi_get_value_string_utf8(env, v, *out, len + 1, &len) != napi_ok) return -1;
  return 0;
}

/* Queues `data` on libuv's pool under `resource`; returns the promise `*deferred` settles. */
static napi_value queue_work(napi_env env, const char *resource, napi_async_execute_callback execute,
                             napi_async_complete_callback complete, void *data, napi_deferred *deferred, napi_async_work *work) {
  napi_value promise, name;
  CHECK(env, napi_create_promise(env, deferred, &promise));
  CHECK(env, napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, execute, complete, data, work));
  CHECK(env, napi_queue_async_work(env, *work));
  return promise;
}

/* ---- netlink ------------------------------------------------------------------------------ */

static napi_value netlink_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *ns = NULL;
  if (argc > 0 && get_string(env, argv[0], &ns) != 0) {
    napi_throw_type_error(env, NULL, "netlinkOpen: nsPath must be a string");
    return NULL;
  }
  int e, fd = socket_in_netns(ns, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE, &e);
  free(ns);
  if (fd >= 0) {
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    int one = 1, rcv = 1 << 20;
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
      e = errno;
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) {
    napi_throw(env, make_error(env, e, "netlink socket"));
    return NULL;
  }
  napi_value r;
  CHECK(env, napi_create_int32(env, fd, &r));
  return r;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref keep; /* the request buffer, alive until the work is done */
  int fd;
  const uint8_t *req;
  size_t req_len;
  int terminals;
  uint8_t *resp;
  size_t resp_len;
  int err;
} nl_job;

static void nl_execute(napi_env env, void *data) {
  (void)env;
  nl_job *j = data;
  ssize_t n;
  do n = send(j->fd, j->req, j->req_len, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    j->err = errno;
    return;
  }
  size_t cap = 1 << 16;
  uint8_t *buf = malloc(cap);
  if (buf == NULL) {
    j->err = ENOMEM;
    return;
  }
  int seen = 0;
  while (seen < j->terminals) {
    /* Room for a whole datagram: peek its size first, so nothing is truncated. */
    if (cap - j->resp_len < (1 << 15)) {
      cap *= 2;
      uint8_t *nb = realloc(buf, cap);
      if (nb == NULL) {
        j->err = ENOMEM;
        break;
      }
      buf = nb;
    }
    ssize_t want;
    do want = recv(j->fd, NULL, 0, MSG_PEEK | MSG_TRUNC);
    while (want < 0 && errno == EINTR);
    if (want < 0) {
      j->err = errno;
      break;
    }
    while (cap - j->resp_len < (size_t)want) {
      cap *= 2;
      uint8_t *nb = realloc(buf, cap);
      if (nb == NULL) {
        j->err = ENOMEM;
        break;
      }
      buf = nb;
    }
    if (j->err) break;
    do n = recv(j->fd, buf + j->resp_len, cap - j->resp_len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      j->err = errno;
      break;
    }
    size_t off = j->resp_len;
    j->resp_len += (size_t)n;
    while (off + sizeof(struct nlmsghdr) <= j->resp_len) {
      struct nlmsghdr *h = (struct nlmsghdr *)(buf + off);
      if (h->nlmsg_len < sizeof(struct nlmsghdr) || off + h->nlmsg_len > j->resp_len) break;
      if (h->nlmsg_type == NLMSG_ERROR || h->nlmsg_type == NLMSG_DONE) seen++;
      off += NLMSG_ALIGN(h->nlmsg_len);
    }
  }
  j->resp = buf;
}

static void nl_complete(napi_env env, napi_status status, void *data) {
  nl_job *j = data;
  napi_value result;
  if (status != napi_ok) {
    napi_value msg, err;
    napi_create_string_utf8(env, "netlink request cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
  } else if (j->err) {
    napi_reject_deferred(env, j->deferred, make_error(env, j->err, "netlink"));
  } else {
    void *copy;
    napi_create_buffer_copy(env, j->resp_len, j->resp, &copy, &result);
    napi_resolve_deferred(env, j->deferred, result);
  }
  napi_delete_reference(env, j->keep);
  napi_delete_async_work(env, j->work);
  free(j->resp);
  free(j);
}

static napi_value netlink_request(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "netlinkRequest(fd, buffer, terminals)");
    return NULL;
  }
  nl_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  void *data;
  size_t len;
  if (napi_get_value_int32(env, argv[0], &j->fd) != napi_ok || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok ||
      napi_get_value_int32(env, argv[2], &j->terminals) != napi_ok) {
    free(j);
    napi_throw_type_error(env, NULL, "netlinkRequest(fd: number, buffer: Buffer, terminals: number)");
    return NULL;
  }
  j->req = data;
  j->req_len = len;
  CHECK(env, napi_create_reference(env, argv[1], 1, &j->keep));
  return queue_work(env, "arca:netlink", nl_execute, nl_complete, j, &j->deferred, &j->work);
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int fd;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "closeFd(fd: number)");
    return NULL;
  }
  close(fd);
  return NULL;
}

/* ---- libnftables, loaded at run time ------------------------------------------------------ */

struct nft_ctx;
static struct {
  int tried, ok;
  struct nft_ctx *(*ctx_new)(uint32_t);
  void (*ctx_free)(struct nft_ctx *);
  int (*buffer_output)(struct nft_ctx *);
  int (*buffer_error)(struct nft_ctx *);
  const char *(*get_output)(struct nft_ctx *);
  const char *(*get_error)(struct nft_ctx *);
  int (*run_cmd)(struct nft_ctx *, const char *);
} nft;
static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;

static int nft_load(void) {
  if (nft.tried) return nft.ok;
  nft.tried = 1;
  void *h = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) return 0;
  nft.ctx_new = dlsym(h, "nft_ctx_new");
  nft.ctx_free = dlsym(h, "nft_ctx_free");
  nft.buffer_output = dlsym(h, "nft_ctx_buffer_output");
  nft.buffer_error = dlsym(h, "nft_ctx_buffer_error");
  nft.get_output = dlsym(h, "nft_ctx_get_output_buffer");
  nft.get_error = dlsym(h, "nft_ctx_get_error_buffer");
  nft.run_cmd = dlsym(h, "nft_run_cmd_from_buffer");
  nft.ok = nft.ctx_new && nft.ctx_free && nft.buffer_output && nft.buffer_error && nft.get_output && nft.get_error && nft.run_cmd;
  return nft.ok;
}

static napi_value nft_available(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  CHECK(env, napi_get_boolean(env, nft_load(), &r));
  return r;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *text, *ns, *out, *errtext;
  int rc, err;
} nft_job;

static void nft_execute(napi_env env, void *data) {
  (void)env;
  nft_job *j = data;
  int prev;
  j->err = enter_netns(j->ns, &prev);
  if (j->err) return;
  /* One context per call (cheap) and one call at a time: libnftables keeps some global state. */
  pthread_mutex_lock(&nft_lock);
  struct nft_ctx *ctx = nft.ctx_new(0);
  if (ctx == NULL) {
    j->err = ENOMEM;
  } else {
    nft.buffer_output(ctx);
    nft.buffer_error(ctx);
    j->rc = nft.run_cmd(ctx, j->text);
    const char *o = nft.get_output(ctx), *e = nft.get_error(ctx);
    j->out = strdup(o ? o : "");
    j->errtext = strdup(e ? e : "");
    nft.ctx_free(ctx);
  }
  pthread_mutex_unlock(&nft_lock);
  leave_netns(prev);
}

static void nft_complete(napi_env env, napi_status status, void *data) {
  nft_job *j = data;
  if (status != napi_ok || j->err) {
    napi_reject_deferred(env, j->deferred, make_error(env, j->err ? j->err : ECANCELED, j->ns ? j->ns : "nft"));
  } else {
    napi_value arr, rc, out, err;
    napi_create_array_with_length(env, 3, &arr);
    napi_create_int32(env, j->rc, &rc);
    napi_create_string_utf8(env, j->out ? j->out : "", NAPI_AUTO_LENGTH, &out);
    napi_create_string_utf8(env, j->errtext ? j->errtext : "", NAPI_AUTO_LENGTH, &err);
    napi_set_element(env, arr, 0, rc);
    napi_set_element(env, arr, 1, out);
    napi_set_element(env, arr, 2, err);
    napi_resolve_deferred(env, j->deferred, arr);
  }
  napi_delete_async_work(env, j->work);
  free(j->text);
  free(j->ns);
  free(j->out);
  free(j->errtext);
  free(j);
}

static napi_value nft_run(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (!nft_load()) {
    napi_throw_error(env, "ENOENT", "libnftables.so.1 is not available");
    return NULL;
  }
  nft_job *j = calloc(1, sizeof *j);
  if (j == NULL || argc < 1 || get_string(env, argv[0], &j->text) != 0 || j->text == NULL ||
      (argc > 1 && get_string(env, argv[1], &j->ns) != 0)) {
    if (j) free(j->text), free(j->ns), free(j);
    napi_throw_type_error(env, NULL, "nftRun(text: string, nsPath?: string)");
    return NULL;
  }
  return queue_work(env, "arca:nft", nft_execute, nft_complete, j, &j->deferred, &j->work);
}

/* ---- files as seen from a namespace, mounts ----------------------------------------------- */

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int kind; /* 0 write file in ns, 1 mount, 2 umount */
  char *a, *b, *c, *d, *what;
  size_t d_len;
  unsigned long flags;
  int err;
} sys_job;

static void sys_execute(napi_env env, void *data) {
  (void)env;
  sys_job *j = data;
  if (j->kind == 0) {
    int prev;
    j->err = enter_netns(j->a, &prev);
    if (j->err) return;
    int fd = open(j->b, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      j->err = errno;
    } else {
      ssize_t n = write(fd, j->d, j->d_len);
      if (n < 0) j->err = errno;
      else if ((size_t)n != j->d_len) j->err = EIO;
      close(fd);
    }
    leave_netns(prev);
  } else if (j->kind == 1) {
    if (mount(j->a, j->b, j->c, j->flags, j->d) < 0) j->err = errno;
  } else {
    if (umount2(j->a, (int)j->flags) < 0) j->err = errno;
  }
}

static void sys_complete(napi_env env, napi_status status, void *data) {
  sys_job *j = data;
  if (status != napi_ok || j->err) {
    napi_reject_deferred(env, j->deferred, make_error(env, j->err ? j->err : ECANCELED, j->what));
  } else {
    napi_value u;
    napi_get_undefined(env, &u);
    napi_resolve_deferred(env, j->deferred, u);
  }
  napi_delete_async_work(env, j->work);
  free(j->a), free(j->b), free(j->c), free(j->d), free(j->what);
  free(j);
}

static napi_value queue_sys(napi_env env, sys_job *j) {
  return queue_work(env, "arca:sys", sys_execute, sys_complete, j, &j->deferred, &j->work);
}

static sys_job *new_sys(int kind, const char *verb, const char *target) {
  sys_job *j = calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  j->kind = kind;
  size_t n = strlen(verb) + (target ? strlen(target) : 0) + 2;
  j->what = malloc(n);
  if (j->what) snprintf(j->what, n, "%s %s", verb, target ? target : "");
  return j;
}

static napi_value write_file_in(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *ns = NULL, *path = NULL, *content = NULL;
  if (argc < 3 || get_string(env, argv[0], &ns) || get_string(env, argv[1], &path) || get_string(env, argv[2], &content) || !path ||
      !content) {
    free(ns), free(path), free(content);
    napi_throw_type_error(env, NULL, "writeFileIn(nsPath: string | null, path: string, data: string)");
    return NULL;
  }
  sys_job *j = new_sys(0, "write", path);
  j->a = ns, j->b = path, j->d = content, j->d_len = strlen(content);
  return queue_sys(env, j);
}

static napi_value do_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *src = NULL, *target = NULL, *fstype = NULL, *opts = NULL;
  double flags = 0;
  if (argc < 5 || get_string(env, argv[0], &src) || get_string(env, argv[1], &target) || get_string(env, argv[2], &fstype) ||
      napi_get_value_double(env, argv[3], &flags) != napi_ok || get_string(env, argv[4], &opts) || !target) {
    free(src), free(target), free(fstype), free(opts);
    napi_throw_type_error(env, NULL, "mount(source, target, fstype, flags: number, data)");
    return NULL;
  }
  sys_job *j = new_sys(1, "mount", target);
  j->a = src, j->b = target, j->c = fstype, j->d = opts, j->flags = (unsigned long)flags;
  return queue_sys(env, j);
}

static napi_value do_umount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *target = NULL;
  int32_t flags = 0;
  if (argc < 2 || get_string(env, argv[0], &target) || !target || napi_get_value_int32(env, argv[1], &flags) != napi_ok) {
    free(target);
    napi_throw_type_error(env, NULL, "umount(target: string, flags: number)");
    return NULL;
  }
  sys_job *j = new_sys(2, "umount", target);
  j->a = target, j->flags = (unsigned long)flags;
  return queue_sys(env, j);
}

/* ---- sockets in a namespace, and UDP on the main loop ------------------------------------- */

/* "1.2.3.4" or "::1" plus a port as a sockaddr; returns its length, or 0 if not an address. */
static socklen_t make_sockaddr(const char *address, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    return sizeof *v4;
  }
  if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    return sizeof *v6;
  }
  return 0;
}

static napi_value socket_in(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *ns = NULL, *kind = NULL, *address = NULL;
  int32_t port = -1;
  if (argc < 4 || get_string(env, argv[0], &ns) || get_string(env, argv[1], &kind) || get_string(env, argv[2], &address) || !kind ||
      !address || napi_get_value_int32(env, argv[3], &port) != napi_ok || port < 0 || port > 65535 ||
      (strcmp(kind, "udp") != 0 && strcmp(kind, "tcp") != 0 && strcmp(kind, "tcp-connect") != 0 && strcmp(kind, "udp-connect") != 0)) {
    free(ns), free(kind), free(address);
    napi_throw_type_error(env, NULL, "socketIn(nsPath: string | null, kind: 'udp' | 'tcp' | 'tcp-connect' | 'udp-connect', address: string, port: number)");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sl = make_sockaddr(address, port, &ss);
  int connecting = strcmp(kind, "tcp-connect") == 0 || strcmp(kind, "udp-connect") == 0;
  int tcp = strcmp(kind, "tcp-connect") == 0 || strcmp(kind, "tcp") == 0;
  free(kind), free(address);
  if (sl == 0) {
    free(ns);
    napi_throw_type_error(env, NULL, "socketIn: not an IP address");
    return NULL;
  }
  int e, fd = socket_in_netns(ns, ss.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, &e);
  free(ns);
  if (fd >= 0) {
    int one = 1;
    if (connecting) {
      if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
        e = errno;
        close(fd);
        fd = -1;
      }
    } else {
      if (tcp) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      else {
        int rcv = 1 << 20; /* bursts outrun the default; the kernel caps it at rmem_max */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
      }
    }
    if (fd >= 0 && !connecting && (bind(fd, (struct sockaddr *)&ss, sl) < 0 || (tcp && listen(fd, 128) < 0))) {
      e = errno;
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) {
    napi_throw(env, make_error(env, e, tcp ? "tcp socket" : "udp socket"));
    return NULL;
  }
  napi_value r;
  CHECK(env, napi_create_int32(env, fd, &r));
  return r;
}

#define UDP_BATCH 32
#define UDP_MAX_DATAGRAM 4096
#define UDP_SEND_BATCH 64

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback, resource, on_error;
  napi_async_context context;
  int fd;
  int closed;
  int timestamps;
  int refs; /* one for the uv handle until its close callback, one for the JS external */
} udp_port;

static void udp_release(udp_port *p) {
  if (--p->refs == 0) free(p);
}

/* Calls fn(args) under the open callback scope; an exception it throws is Node's uncaught one. */
static void udp_call(napi_env env, napi_value resource, napi_value fn, size_t argc, napi_value *args) {
  if (napi_call_function(env, resource, fn, argc, args, NULL) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

static void udp_deliver(napi_env env, napi_value resource, napi_value callback, const uint8_t *data, size_t len,
                        const struct sockaddr_storage *from, int64_t rx_mono_ns) {
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  char text[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (from->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)from;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
  } else if (from->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)from;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
  }
  napi_value args[4];
  void *copy;
  size_t argc = 3;
  napi_create_buffer_copy(env, len, data, &copy, &args[0]);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &args[1]);
  napi_create_int32(env, port, &args[2]);
  if (rx_mono_ns >= 0) {
    napi_create_bigint_int64(env, rx_mono_ns, &args[3]);
    argc = 4;
  }
  udp_call(env, resource, callback, argc, args);
  napi_close_handle_scope(env, scope);
}

/* The kernel's receive time (SO_TIMESTAMPNS, CLOCK_REALTIME) on the monotonic clock process.hrtime
 * reads, or -1: the two clocks are read back to back here, so the offset errs by well under 1 µs. */
static int64_t rx_time(struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
    struct timespec rx, real, mono;
    memcpy(&rx, CMSG_DATA(c), sizeof rx);
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    int64_t offset = ((int64_t)real.tv_sec - mono.tv_sec) * 1000000000LL + (real.tv_nsec - mono.tv_nsec);
    return (int64_t)rx.tv_sec * 1000000000LL + rx.tv_nsec - offset;
  }
  return -1;
}

static void udp_on_readable(uv_poll_t *handle, int status, int events);

/* A connected socket's pending error (an ICMP unreachable for an earlier datagram) makes epoll
 * report EPOLLERR, on which libuv stops the poll: read the error (which clears it), tell
 * onError, and poll again, or the socket would never be read after one refused datagram. */
static void udp_on_error(udp_port *p, napi_value resource) {
  int err = 0;
  socklen_t el = sizeof err;
  getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &el);
  int e = uv_poll_start(&p->poll, UV_READABLE, udp_on_readable);
  napi_env env = p->env;
  if (p->on_error == NULL) return;
  napi_value fn, code;
  if (napi_get_reference_value(env, p->on_error, &fn) != napi_ok || fn == NULL) return;
  napi_create_string_utf8(env, errno_code(e < 0 ? -e : err ? err : EIO), NAPI_AUTO_LENGTH, &code);
  udp_call(env, resource, fn, 1, &code);
}

static void udp_on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  udp_port *p = handle->data;
  if (p->closed) return;
  /* Main thread only, so one set of buffers serves every port. */
  static uint8_t bufs[UDP_BATCH][UDP_MAX_DATAGRAM];
  static struct sockaddr_storage from[UDP_BATCH];
  static struct iovec iov[UDP_BATCH];
  static struct mmsghdr msgs[UDP_BATCH];
  static union {
    char buf[CMSG_SPACE(sizeof(struct timespec))];
    struct cmsghdr align;
  } control[UDP_BATCH];
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value resource, callback;
  napi_callback_scope cscope;
  napi_get_reference_value(env, p->resource, &resource);
  napi_get_reference_value(env, p->callback, &callback);
  if (napi_open_callback_scope(env, resource, p->context, &cscope) != napi_ok) {
    napi_close_handle_scope(env, scope);
    return;
  }
  if (status < 0) udp_on_error(p, resource);
  /* A bounded number of rounds per wake-up, so one busy port cannot starve the loop. */
  for (int round = 0; round < 8 && !p->closed; round++) {
    for (int i = 0; i < UDP_BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = UDP_MAX_DATAGRAM;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      if (p->timestamps) {
        msgs[i].msg_hdr.msg_control = control[i].buf;
        msgs[i].msg_hdr.msg_controllen = sizeof control[i].buf;
      }
    }
    int n = recvmmsg(p->fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) break;
    for (int i = 0; i < n && !p->closed; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue; /* larger than any query we answer */
      udp_deliver(env, resource, callback, bufs[i], msgs[i].msg_len, &from[i], p->timestamps ? rx_time(&msgs[i].msg_hdr) : -1);
    }
    if (n < UDP_BATCH) break;
  }
  napi_close_callback_scope(env, cscope);
  napi_close_handle_scope(env, scope);
}

static void udp_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  udp_release(data);
}

static void udp_handle_closed(uv_handle_t *handle) {
  udp_port *p = handle->data;
  close(p->fd);
  udp_release(p);
}

static udp_port *get_port(napi_env env, napi_value v) {
  void *data = NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok) return NULL;
  return data;
}

static napi_value udp_watch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  napi_valuetype t = napi_undefined, ot = napi_undefined, et = napi_undefined;
  napi_value on_error = NULL;
  bool timestamps = false;
  int bad = argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function;
  if (!bad && argc >= 3 && napi_typeof(env, argv[2], &ot) == napi_ok && ot == napi_object) {
    napi_value ts;
    bad = napi_get_named_property(env, argv[2], "onError", &on_error) != napi_ok || napi_typeof(env, on_error, &et) != napi_ok ||
          (et != napi_function && et != napi_undefined) || napi_get_named_property(env, argv[2], "timestamps", &ts) != napi_ok;
    if (!bad) napi_get_value_bool(env, ts, &timestamps); /* not a boolean: false */
    if (et != napi_function) on_error = NULL;
  } else if (!bad && argc >= 3) {
    bad = ot != napi_undefined;
  }
  if (bad) {
    napi_throw_type_error(env, NULL, "udpWatch(fd: number, onMessage: (msg, address, port, rxTime?) => void, options?: { onError?, timestamps? })");
    return NULL;
  }
  if (timestamps) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0) {
      napi_throw(env, make_error(env, errno, "udpWatch: SO_TIMESTAMPNS"));
      return NULL;
    }
  }
  uv_loop_t *loop;
  CHECK(env, napi_get_uv_event_loop(env, &loop));
  udp_port *p = calloc(1, sizeof *p);
  if (p == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  p->env = env;
  p->fd = fd;
  p->timestamps = timestamps;
  int e = uv_poll_init(loop, &p->poll, fd);
  if (e < 0) {
    free(p);
    napi_throw(env, make_error(env, -e, "udpWatch"));
    return NULL;
  }
  p->poll.data = p;
  p->refs = 2;
  napi_value resource, name, external;
  CHECK(env, napi_create_object(env, &resource));
  CHECK(env, napi_create_string_utf8(env, "arca:udp", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_async_init(env, resource, name, &p->context));
  CHECK(env, napi_create_reference(env, resource, 1, &p->resource));
  CHECK(env, napi_create_reference(env, argv[1], 1, &p->callback));
  if (on_error != NULL) CHECK(env, napi_create_reference(env, on_error, 1, &p->on_error));
  uv_poll_start(&p->poll, UV_READABLE, udp_on_readable);
  CHECK(env, napi_create_external(env, p, udp_finalize, NULL, &external));
  return external;
}

/* Sends one datagram without blocking; returns 0 or -errno (a full buffer drops it, as UDP may). */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_port *p = argc >= 4 ? get_port(env, argv[0]) : NULL;
  void *data;
  size_t len;
  char address[INET6_ADDRSTRLEN + 1];
  size_t alen;
  int32_t port;
  if (p == NULL || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], address, sizeof address, &alen) != napi_ok || napi_get_value_int32(env, argv[3], &port) != napi_ok) {
    napi_throw_type_error(env, NULL, "udpSend(port, msg: Buffer, address: string, port: number)");
    return NULL;
  }
  int rc = 0;
  struct sockaddr_storage ss;
  socklen_t sl = make_sockaddr(address, port, &ss);
  if (p->closed) rc = -EBADF;
  else if (sl == 0) rc = -EINVAL;
  else if (sendto(p->fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&ss, sl) < 0) rc = -errno;
  napi_value r;
  CHECK(env, napi_create_int32(env, rc, &r));
  return r;
}

/* An Int32Array argument's elements, or NULL. */
static int32_t *get_int32s(napi_env env, napi_value v, size_t *length) {
  bool is;
  napi_typedarray_type type;
  void *data;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  if (napi_get_typedarray_info(env, v, &type, length, &data, NULL, NULL) != napi_ok || type != napi_int32_array) return NULL;
  return data;
}

/*
 * Sends `count` datagrams, buf[spans[2i], spans[2i] + spans[2i+1]), on a connected socket: one
 * sendmmsg per 64, no copy in JS, nothing kept after the call (the caller may reuse buf at once).
 * Returns how many went. A full send buffer drops the rest (as UDP may); a hard error (a pending
 * ECONNREFUSED from an earlier datagram's ICMP) loses the datagram it came back on, the rest are
 * still tried. status[0], if given, gets the first such errno (0 if none) and status[1] the
 * datagrams lost.
 */
static napi_value udp_send_many(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_port *p = argc >= 4 ? get_port(env, argv[0]) : NULL;
  uint8_t *data = NULL;
  size_t len = 0, nspans = 0, nstatus = 0;
  int32_t count = -1;
  int32_t *spans = p ? get_int32s(env, argv[2], &nspans) : NULL;
  int32_t *status = argc >= 5 ? get_int32s(env, argv[4], &nstatus) : NULL;
  int bad = p == NULL || napi_get_buffer_info(env, argv[1], (void **)&data, &len) != napi_ok || spans == NULL ||
            napi_get_value_int32(env, argv[3], &count) != napi_ok || count < 0 || (size_t)count * 2 > nspans || (argc >= 5 && (status == NULL || nstatus < 2));
  for (int32_t i = 0; !bad && i < count; i++) {
    int64_t off = spans[2 * i], n = spans[2 * i + 1];
    bad = off < 0 || n < 0 || off + n > (int64_t)len;
  }
  if (bad) {
    napi_throw_type_error(env, NULL, "udpSendMany(port, buf: Buffer, spans: Int32Array (offset, length pairs within buf), count: number, status?: Int32Array(2))");
    return NULL;
  }
  struct iovec iov[UDP_SEND_BATCH];
  struct mmsghdr msgs[UDP_SEND_BATCH];
  int32_t sent = 0, lost = 0, first_error = 0;
  int32_t i = 0;
  if (p->closed) first_error = EBADF, lost = count, i = count;
  while (i < count) {
    int k = count - i < UDP_SEND_BATCH ? count - i : UDP_SEND_BATCH;
    for (int j = 0; j < k; j++) {
      iov[j].iov_base = data + spans[2 * (i + j)];
      iov[j].iov_len = (size_t)spans[2 * (i + j) + 1];
      memset(&msgs[j], 0, sizeof msgs[j]);
      msgs[j].msg_hdr.msg_iov = &iov[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(p->fd, msgs, (unsigned)k, MSG_DONTWAIT);
    if (r > 0) {
      sent += r;
      i += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    int e = r < 0 ? errno : EIO;
    if (e == EAGAIN || e == ENOBUFS) {
      lost += count - i;
      if (first_error == 0) first_error = e;
      break;
    }
    if (first_error == 0) first_error = e;
    lost++;
    i++;
  }
  if (status) status[0] = first_error, status[1] = lost;
  napi_value rv;
  CHECK(env, napi_create_int32(env, sent, &rv));
  return rv;
}

static napi_value udp_local_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_port *p = argc >= 1 ? get_port(env, argv[0]) : NULL;
  if (p == NULL) {
    napi_throw_type_error(env, NULL, "udpLocalPort(port)");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int port = 0;
  if (!p->closed && getsockname(p->fd, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET) port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    else if (ss.ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  }
  napi_value r;
  CHECK(env, napi_create_int32(env, port, &r));
  return r;
}

static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  udp_port *p = argc >= 1 ? get_port(env, argv[0]) : NULL;
  if (p == NULL) {
    napi_throw_type_error(env, NULL, "udpClose(port)");
    return NULL;
  }
  if (p->closed) return NULL;
  p->closed = 1;
  uv_poll_stop(&p->poll);
  napi_delete_reference(env, p->callback);
  napi_delete_reference(env, p->resource);
  if (p->on_error) napi_delete_reference(env, p->on_error);
  p->on_error = NULL;
  napi_async_destroy(env, p->context);
  uv_close((uv_handle_t *)&p->poll, udp_handle_closed);
  return NULL;
}

/* ---- another process's UDP buffers -------------------------------------------------------- */

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/*
 * wireguard-go (Debian's 0.0.20220316) never sizes its UDP sockets, so they get net.core.rmem_default
 * (208 KiB), and a network namespace can neither raise that nor rmem_max for itself: under a TCP
 * stream tens of thousands of datagrams a second die in its receive queue. The sockets are the
 * process's own; pidfd_getfd gives us a duplicate of each (same socket), on which the FORCE options
 * (CAP_NET_ADMIN) pass the namespace's limits. Quick and synchronous: a readdir and a few syscalls.
 */
static napi_value raise_udp_buffers(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t pid, bytes;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_int32(env, argv[0], &pid) != napi_ok || napi_get_value_int32(env, argv[1], &bytes) != napi_ok || pid <= 0 || bytes <= 0) {
    napi_throw_type_error(env, NULL, "raiseUdpBuffers(pid: number, bytes: number)");
    return NULL;
  }
  int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pfd < 0) {
    napi_throw(env, make_error(env, errno, "pidfd_open"));
    return NULL;
  }
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    close(pfd);
    napi_throw(env, make_error(env, e, "opendir /proc/PID/fd"));
    return NULL;
  }
  int udp = 0, raised = 0;
  struct dirent *ent;
  while ((ent = readdir(d)) != NULL) {
    if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
    char link[64];
    ssize_t n = readlinkat(dirfd(d), ent->d_name, link, sizeof link - 1);
    if (n <= 0) continue;
    link[n] = 0;
    if (strncmp(link, "socket:", 7) != 0) continue;
    int fd = (int)syscall(SYS_pidfd_getfd, pfd, atoi(ent->d_name), 0);
    if (fd < 0) continue;
    int type = 0, domain = 0, have = 0;
    socklen_t l = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l) == 0 && type == SOCK_DGRAM) {
      l = sizeof domain;
      if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l) == 0 && (domain == AF_INET || domain == AF_INET6)) {
        udp++;
        l = sizeof have;
        /* The kernel reports twice what was set (its bookkeeping overhead): a raised socket reads >= bytes. */
        if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &have, &l) == 0 && have < bytes) {
          if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0 &&
              setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) == 0)
            raised++;
        }
      }
    }
    close(fd);
  }
  closedir(d);
  close(pfd);
  napi_value out, a, b;
  CHECK(env, napi_create_array_with_length(env, 2, &out));
  CHECK(env, napi_create_int32(env, udp, &a));
  CHECK(env, napi_create_int32(env, raised, &b));
  CHECK(env, napi_set_element(env, out, 0, a));
  CHECK(env, napi_set_element(env, out, 1, b));
  return out;
}

/* ---- busy polling ------------------------------------------------------------------------ */

/* A started idle handle makes libuv poll with timeout 0 on every loop iteration: the main thread
 * keeps its core instead of sleeping in epoll_wait, so input is seen within one iteration rather
 * than after a wake-up (on a VM, a halted vCPU woken by an IPI: tens of µs at the median, ms at the
 * tail). The check runs in C, so spinning calls no JS and allocates nothing. Unref'd: a spinning
 * loop with nothing else to do still exits. One per env (worker threads have loops of their own). */
typedef struct {
  uv_idle_t idle;
  uint64_t until_ns;
  int active;
} busy_poll_state;

static void busy_poll_tick(uv_idle_t *h) {
  busy_poll_state *b = h->data;
  if (uv_hrtime() < b->until_ns) return;
  uv_idle_stop(h);
  b->active = 0;
}

static void busy_poll_free(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  busy_poll_state *b = data;
  /* The env is going away with its loop; the handle's memory must outlive its close. */
  uv_idle_stop(&b->idle);
  uv_close((uv_handle_t *)&b->idle, (uv_close_cb)free);
}

static napi_value busy_poll(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double ms;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_double(env, argv[0], &ms) != napi_ok || !(ms >= 0) || ms > 60000) {
    napi_throw_type_error(env, NULL, "busyPoll(ms: number, 0 to 60000)");
    return NULL;
  }
  busy_poll_state *b = NULL;
  CHECK(env, napi_get_instance_data(env, (void **)&b));
  if (b == NULL) {
    uv_loop_t *loop;
    CHECK(env, napi_get_uv_event_loop(env, &loop));
    b = calloc(1, sizeof *b);
    if (b == NULL) {
      napi_throw_error(env, "ENOMEM", "out of memory");
      return NULL;
    }
    uv_idle_init(loop, &b->idle);
    uv_unref((uv_handle_t *)&b->idle);
    b->idle.data = b;
    CHECK(env, napi_set_instance_data(env, b, busy_poll_free, NULL));
  }
  /* The latest end wins: engines sharing a loop (VMs in one daemon) each keep it spinning for
   * their own window, none cuts another's short. */
  uint64_t until = uv_hrtime() + (uint64_t)(ms * 1e6);
  if (until > b->until_ns) b->until_ns = until;
  if (!b->active && ms > 0) {
    uv_idle_start(&b->idle, busy_poll_tick);
    b->active = 1;
  }
  return NULL;
}

/* ---- module ------------------------------------------------------------------------------- */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"netlinkOpen", NULL, netlink_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netlinkRequest", NULL, netlink_request, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nftAvailable", NULL, nft_available, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nftRun", NULL, nft_run, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeFileIn", NULL, write_file_in, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mount", NULL, do_mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"umount", NULL, do_umount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketIn", NULL, socket_in, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpWatch", NULL, udp_watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSend", NULL, udp_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpClose", NULL, udp_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSendMany", NULL, udp_send_many, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpLocalPort", NULL, udp_local_port, NULL, NULL, NULL, napi_enumerable, NULL},
      {"busyPoll", NULL, busy_poll, NULL, NULL, NULL, napi_enumerable, NULL},
      {"raiseUdpBuffers", NULL, raise_udp_buffers, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
