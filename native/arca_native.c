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
 *   fastPathCreate(...) and fastPath*    FilteredNAT's forwarding thread for one engine: it reads the
 *                                        guest's stream and forwards established flows itself (its
 *                                        section below says how)
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
    case ECONNRESET: return "ECONNRESET";
    case EPIPE: return "EPIPE";
    case EISCONN: return "EISCONN";
    case EMFILE: return "EMFILE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOTSOCK: return "ENOTSOCK";
    case ETIMEDOUT: return "ETIMEDOUT";
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

/* ---- FilteredNAT's forwarding thread ------------------------------------------------------ */

/*
 * One thread per engine, with an epoll of its own, owns the hot loop for established flows: it
 * reads the guest's stream (QEMU's framing: a 4-byte big-endian length, then the frame), sends the
 * payload of each frame that is plain Ethernet/IPv4/UDP on a flow the TypeScript engine installed
 * on that flow's host socket, and writes the peer's replies back to the guest as frames. A frame it
 * is not sure of (ARP, DHCP, a flow's first packet, anything odd) goes to the engine unchanged, in
 * order: while any such frame waits for the engine, every later frame waits behind it, so a flow's
 * datagrams never overtake one another between the two paths. Policy stays in TypeScript: the
 * engine alone installs and removes flows; this thread only matches installed ones.
 *
 * Locking: `mu` guards the flow table, the queue to the engine and the queue to the guest. The
 * thread alone closes the stream's and the flows' fds (the main thread asks it to), so it can use
 * them outside the lock without an fd being reused under it.
 */

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <sys/un.h>

#define FP_MAX_FLOWS 1024
#define FP_MAX_FRAME 1522
#define FP_MAX_REPLY 1472 /* 1500 - IPv4 - UDP: a reply above it would need fragments */
#define FP_READ_BUF (64 * 1024)
#define FP_TO_JS_CAP (256 * 1024)
#define FP_REPLY_BATCH 32
#define FP_REPLY_SLOT 1536
#define FP_HDR (4 + 14 + 20 + 8)
#define FP_SEND_BATCH 64
#define FP_TAG_WAKE 0xffffffffu
#define FP_TAG_STREAM 0xfffffffeu

enum { FL_FREE = 0, FL_ACTIVE, FL_CLOSING };
/* At most one datagram per 46 bytes of a read (a length prefix and the smallest UDP frame). */
#define FP_MAX_SENDS (FP_READ_BUF / 46 + 1)
struct fp_send;

/* The counters the engine folds into its stats (fastPathStats gives them in this order). */
enum {
  FPC_FORWARDED,       /* frames whose payload this thread sent */
  FPC_OVERSIZE,        /* length prefixes beyond FP_MAX_FRAME (skipped, counted as the engine's `oversize`) */
  FPC_PUNTED,          /* frames handed to the engine */
  FPC_PUNT_NOT_UDP,    /* ... not plain Ethernet/IPv4/UDP to the gateway from the guest */
  FPC_PUNT_NO_FLOW,    /* ... plain UDP but no installed flow (a first packet, or not allowed) */
  FPC_PUNT_ORDER,      /* ... would have matched, but an earlier frame was still with the engine */
  FPC_REPLIES_IN,      /* datagrams read on flow sockets */
  FPC_REPLIES_OUT,     /* ... written to the guest as frames */
  FPC_REPLY_NO_GUEST,  /* ... dropped: no guest MAC yet, or no stream */
  FPC_REPLY_TOO_BIG,   /* ... dropped: above FP_MAX_REPLY */
  FPC_REPLY_BACKPRESSURE, /* ... dropped: the guest is not reading */
  FPC_SEND_ERRORS,     /* datagrams lost on send, and flow socket errors (ICMP unreachable) */
  FPC_STREAM_READS,
  FPC_PUNT_GUEST_MAC,  /* ... from a MAC other than the guest's the engine learned (or none yet) */
  FPC_N
};

typedef struct {
  int state;
  int fd;
  uint32_t dst_ip; /* as the guest addresses it */
  uint16_t dst_port, guest_port;
  uint64_t last_used_ns; /* written by the thread, read by the main thread (relaxed atomics) */
} fp_flow;

typedef struct fastpath {
  pthread_t thread;
  int thread_started;
  int ep, wake;
  pthread_mutex_t mu;
  /* Set on the main thread only. */
  napi_threadsafe_function tsfn;
  napi_env env;
  int closed;
  int tsfn_refd;
  int refs; /* the JS external and the tsfn's finalizer */
  /* Under mu. */
  int stop;
  int stream_fd;
  uint32_t stream_gen;
  uint32_t closed_gen; /* a stream the thread saw end, not yet told to the engine */
  int closed_errno;
  int out_armed;
  uint8_t *out;
  size_t out_len, out_cap, max_queued;
  uint8_t *to_js;
  size_t to_js_len;
  /* The engine reads one buffer while the thread fills the other; each is wrapped once in a JS
   * Buffer (external, no copy), so a hand-over allocates nothing. Main thread only. */
  uint8_t *js_side;
  uint8_t *js_mem[2];
  napi_ref js_buf[2];
  int js_signalled;
  size_t js_outstanding; /* frames the engine took and is still handling */
  int paused; /* the thread stopped reading the stream: to_js is full */
  int resume; /* the main thread drained to_js: read again */
  uint8_t gw_mac[6], guest_mac[6];
  int have_guest_mac;
  uint32_t gw_ip, guest_ip;
  int nflows_hint; /* one past the highest slot ever used */
  fp_flow flows[FP_MAX_FLOWS];
  uint16_t ip_id;
  /* The thread's own. */
  uint8_t *rbuf;
  size_t rhave, rskip;
  int last_slot;
  uint64_t spin_ns; /* after input, poll without sleeping this long (0: sleep in epoll_wait at once) */
  struct fp_send *sends;        /* a read's datagrams to send */
  uint8_t (*replies)[FP_REPLY_SLOT]; /* recvmmsg lands replies here, behind room for their headers */
  uint64_t counters[FPC_N];
} fastpath;

static inline void fpc_add(fastpath *f, int c, uint64_t n) { __atomic_fetch_add(&f->counters[c], n, __ATOMIC_RELAXED); }

static inline uint64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static inline uint32_t be16(const uint8_t *p) { return ((uint32_t)p[0] << 8) | p[1]; }
static inline uint32_t be32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static inline void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static inline void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v; }

static uint64_t sum16(const uint8_t *p, size_t len, uint64_t sum) {
  size_t i = 0;
  for (; i + 1 < len; i += 2) sum += be16(p + i);
  if (len & 1) sum += (uint32_t)p[len - 1] << 8;
  return sum;
}

static uint32_t fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint32_t)(~sum & 0xffff);
}

/*
 * The flow slot a frame belongs to, or -1: the frame must then go to the engine. At least as
 * strict as frame-parser.ts plus the engine's checks before it forwards (to the gateway's MAC, from
 * the guest's MAC and address, no DHCP), so that anything sent from here the engine would have
 * forwarded too. Under mu.
 */
static int fp_match(fastpath *f, const uint8_t *p, size_t len, int *reason) {
  *reason = FPC_PUNT_NOT_UDP;
  if (len < 14 + 20 + 8 || len > FP_MAX_FRAME) return -1;
  if (memcmp(p, f->gw_mac, 6) != 0) return -1;
  if (!f->have_guest_mac || memcmp(p + 6, f->guest_mac, 6) != 0 || (p[6] & 1)) {
    *reason = FPC_PUNT_GUEST_MAC;
    return -1;
  }
  if (p[12] != 0x08 || p[13] != 0x00) return -1;
  const uint8_t *ip = p + 14;
  if (ip[0] != 0x45) return -1; /* version 4, no options */
  size_t total = be16(ip + 2);
  if (total < 20 + 8 || 14 + total > len) return -1;
  if (14 + total != len && len > 60) return -1; /* only Ethernet padding may trail */
  if (fold(sum16(ip, 20, 0)) != 0) return -1;
  if (be16(ip + 6) & 0xbfff) return -1; /* reserved bit, MF, or an offset: DF alone is fine */
  if (ip[9] != 17) return -1;
  uint32_t src = be32(ip + 12), dst = be32(ip + 16);
  if (src != f->guest_ip) return -1;
  const uint8_t *u = ip + 20;
  size_t ulen = be16(u + 4);
  if (ulen != total - 20) return -1;
  uint32_t sport = be16(u), dport = be16(u + 2);
  if (sport == 0 || dport == 0 || dport == 67) return -1;
  if (be16(u + 6) != 0) {
    uint64_t pseudo = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 17 + ulen;
    if (fold(sum16(u, ulen, pseudo)) != 0) return -1;
  }
  *reason = FPC_PUNT_NO_FLOW;
  int last = f->last_slot;
  if (last >= 0 && last < f->nflows_hint) {
    fp_flow *fl = &f->flows[last];
    if (fl->state == FL_ACTIVE && fl->dst_ip == dst && fl->dst_port == dport && fl->guest_port == sport) return last;
  }
  for (int i = 0; i < f->nflows_hint; i++) {
    fp_flow *fl = &f->flows[i];
    if (fl->state == FL_ACTIVE && fl->dst_ip == dst && fl->dst_port == dport && fl->guest_port == sport) {
      f->last_slot = i;
      return i;
    }
  }
  return -1;
}

static void fp_set_stream_events(fastpath *f) {
  if (f->stream_fd < 0) return;
  struct epoll_event ev = {.events = (f->paused ? 0 : EPOLLIN | EPOLLRDHUP) | (f->out_armed ? EPOLLOUT : 0), .data.u64 = FP_TAG_STREAM};
  epoll_ctl(f->ep, EPOLL_CTL_MOD, f->stream_fd, &ev);
}

/* Queues (or writes at once) bytes towards the guest; under mu. 0, or -1 if dropped for want of room. */
static int fp_out(fastpath *f, const struct iovec *iov, int n, size_t total, int droppable) {
  if (f->stream_fd < 0) return -1;
  if (droppable && f->out_len > f->max_queued) return -1;
  size_t done = 0;
  if (f->out_len == 0) {
    ssize_t w;
    do w = writev(f->stream_fd, iov, n);
    while (w < 0 && errno == EINTR);
    if (w > 0) done = (size_t)w;
    if (done == total) return 0;
  }
  size_t rest = total - done;
  if (f->out_len + rest > f->out_cap) {
    size_t cap = f->out_cap ? f->out_cap : 16384;
    while (cap < f->out_len + rest) cap *= 2;
    uint8_t *nb = realloc(f->out, cap);
    if (nb == NULL) return -1;
    f->out = nb, f->out_cap = cap;
  }
  size_t skip = done;
  for (int i = 0; i < n; i++) {
    size_t l = iov[i].iov_len;
    if (skip >= l) {
      skip -= l;
      continue;
    }
    memcpy(f->out + f->out_len, (uint8_t *)iov[i].iov_base + skip, l - skip);
    f->out_len += l - skip;
    skip = 0;
  }
  if (!f->out_armed) {
    f->out_armed = 1;
    fp_set_stream_events(f);
  }
  return 0;
}

static void fp_flush_out(fastpath *f) {
  while (f->out_len > 0 && f->stream_fd >= 0) {
    ssize_t w;
    do w = write(f->stream_fd, f->out, f->out_len);
    while (w < 0 && errno == EINTR);
    if (w <= 0) break;
    memmove(f->out, f->out + w, f->out_len - (size_t)w);
    f->out_len -= (size_t)w;
  }
  if (f->out_len == 0 && f->out_armed) {
    f->out_armed = 0;
    fp_set_stream_events(f);
  }
  /* A large queue drained: give its memory back (the daemon runs many engines). */
  if (f->out_len == 0 && f->out_cap > 65536) {
    free(f->out);
    f->out = NULL, f->out_cap = 0;
  }
}

static void fp_signal_js(fastpath *f) {
  if (f->js_signalled) return;
  f->js_signalled = 1;
  if (napi_call_threadsafe_function(f->tsfn, NULL, napi_tsfn_nonblocking) != napi_ok) f->js_signalled = 0;
}

/* Closes the stream from the thread; under mu. */
static void fp_stream_gone(fastpath *f, int err) {
  if (f->stream_fd < 0) return;
  epoll_ctl(f->ep, EPOLL_CTL_DEL, f->stream_fd, NULL);
  close(f->stream_fd);
  f->stream_fd = -1;
  f->out_len = 0;
  f->out_armed = 0;
  f->rhave = f->rskip = 0;
  f->paused = 0;
  f->closed_gen = f->stream_gen;
  f->closed_errno = err;
  fp_signal_js(f);
}

typedef struct fp_send {
  int slot;
  struct iovec iov;
} fp_send;

/* Sends runs of datagrams of one flow with one sendmmsg each; outside mu (fds are the thread's to close). */
static void fp_send_batch(fastpath *f, fp_send *s, int n) {
  struct mmsghdr m[FP_SEND_BATCH];
  int i = 0;
  while (i < n) {
    int slot = s[i].slot, k = 0;
    while (i + k < n && s[i + k].slot == slot && k < FP_SEND_BATCH) {
      memset(&m[k], 0, sizeof m[k]);
      m[k].msg_hdr.msg_iov = &s[i + k].iov;
      m[k].msg_hdr.msg_iovlen = 1;
      k++;
    }
    int fd = f->flows[slot].fd, sent = 0;
    while (sent < k) {
      int r = sendmmsg(fd, m + sent, (unsigned)(k - sent), MSG_DONTWAIT);
      if (r > 0) {
        sent += r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno != EAGAIN && errno != ENOBUFS) {
        /* One datagram refused (a pending ICMP error, ...): count it, send the rest. */
        fpc_add(f, FPC_SEND_ERRORS, 1);
        sent++;
        continue;
      }
      fpc_add(f, FPC_SEND_ERRORS, (uint64_t)(k - sent));
      break;
    }
    __atomic_store_n(&f->flows[slot].last_used_ns, mono_ns(), __ATOMIC_RELAXED);
    fpc_add(f, FPC_FORWARDED, (uint64_t)k);
    i += k;
  }
}

/* Cuts rbuf[0, rhave) into frames: matched ones sent, the rest queued for the engine. Keeps a
 * partial frame (or frames that found to_js full) at the front for the next read. */
static void fp_process_stream(fastpath *f) {
  fp_send *sends = f->sends;
  int ns = 0;
  size_t i = 0, n = f->rhave;
  pthread_mutex_lock(&f->mu);
  int punting = f->to_js_len > 0 || f->js_outstanding > 0;
  while (i < n) {
    if (f->rskip > 0) {
      size_t k = f->rskip < n - i ? f->rskip : n - i;
      f->rskip -= k, i += k;
      continue;
    }
    if (n - i < 4) break;
    uint32_t len = be32(f->rbuf + i);
    if (len > FP_MAX_FRAME) {
      fpc_add(f, FPC_OVERSIZE, 1);
      f->rskip = len;
      i += 4;
      continue;
    }
    if (n - i - 4 < len) break;
    const uint8_t *p = f->rbuf + i + 4;
    int reason, slot = fp_match(f, p, len, &reason);
    if (slot >= 0 && punting) slot = -1, reason = FPC_PUNT_ORDER;
    if (slot >= 0) {
      sends[ns].slot = slot;
      sends[ns].iov.iov_base = (void *)(p + 14 + 20 + 8);
      sends[ns].iov.iov_len = be16(p + 16) - 20 - 8; /* the UDP payload, less any Ethernet padding */
      ns++;
    } else {
      if (FP_TO_JS_CAP - f->to_js_len < 4 + len) {
        f->paused = 1;
        fp_set_stream_events(f);
        break;
      }
      memcpy(f->to_js + f->to_js_len, f->rbuf + i, 4 + len);
      f->to_js_len += 4 + len;
      fpc_add(f, FPC_PUNTED, 1);
      fpc_add(f, reason, 1);
      punting = 1;
    }
    i += 4 + len;
  }
  if (f->to_js_len > 0) fp_signal_js(f);
  pthread_mutex_unlock(&f->mu);
  if (ns > 0) fp_send_batch(f, sends, ns);
  if (i > 0) {
    memmove(f->rbuf, f->rbuf + i, n - i);
    f->rhave = n - i;
  }
}

static void fp_read_stream(fastpath *f) {
  for (int round = 0; round < 16; round++) {
    if (f->paused || f->stream_fd < 0 || f->rhave >= FP_READ_BUF) return;
    ssize_t r;
    do r = read(f->stream_fd, f->rbuf + f->rhave, FP_READ_BUF - f->rhave);
    while (r < 0 && errno == EINTR);
    if (r == 0 || (r < 0 && errno != EAGAIN)) {
      pthread_mutex_lock(&f->mu);
      fp_stream_gone(f, r == 0 ? 0 : errno);
      pthread_mutex_unlock(&f->mu);
      return;
    }
    if (r < 0) return;
    fpc_add(f, FPC_STREAM_READS, 1);
    f->rhave += (size_t)r;
    fp_process_stream(f);
    if ((size_t)r < FP_READ_BUF / 2) return;
  }
}

static void fp_read_flow(fastpath *f, int slot) {
  struct iovec iov[FP_REPLY_BATCH], wiov[FP_REPLY_BATCH];
  struct mmsghdr m[FP_REPLY_BATCH];
  /* Allocated on a flow's first reply: an engine whose peers never answer never pays for them. */
  if (f->replies == NULL && (f->replies = malloc(FP_REPLY_BATCH * FP_REPLY_SLOT)) == NULL) return;
  uint8_t (*bufs)[FP_REPLY_SLOT] = f->replies;
  int fd = f->flows[slot].fd;
  for (int round = 0; round < 8; round++) {
    for (int i = 0; i < FP_REPLY_BATCH; i++) {
      /* The payload lands where the frame's headers end: nothing copied. One byte more than fits,
       * so that a datagram too big for the guest's MTU is seen as such. */
      iov[i].iov_base = bufs[i] + FP_HDR;
      iov[i].iov_len = FP_MAX_REPLY + 1;
      memset(&m[i], 0, sizeof m[i]);
      m[i].msg_hdr.msg_iov = &iov[i];
      m[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, m, FP_REPLY_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      /* A connected socket's ICMP error, reported (and cleared) by this read. */
      fpc_add(f, FPC_SEND_ERRORS, 1);
      continue;
    }
    if (n == 0) return;
    fpc_add(f, FPC_REPLIES_IN, (uint64_t)n);
    pthread_mutex_lock(&f->mu);
    fp_flow *fl = &f->flows[slot];
    int w = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
      size_t plen = m[i].msg_len;
      if (fl->state != FL_ACTIVE || !f->have_guest_mac || f->stream_fd < 0) {
        fpc_add(f, FPC_REPLY_NO_GUEST, 1);
        continue;
      }
      if (plen > FP_MAX_REPLY || (m[i].msg_hdr.msg_flags & MSG_TRUNC)) {
        fpc_add(f, FPC_REPLY_TOO_BIG, 1);
        continue;
      }
      uint8_t *b = bufs[i];
      uint32_t flen = (uint32_t)(14 + 20 + 8 + plen);
      put32(b, flen);
      memcpy(b + 4, f->guest_mac, 6);
      memcpy(b + 10, f->gw_mac, 6);
      b[16] = 0x08, b[17] = 0x00;
      uint8_t *ip = b + 18;
      ip[0] = 0x45, ip[1] = 0;
      put16(ip + 2, 20 + 8 + (uint32_t)plen);
      put16(ip + 4, f->ip_id++);
      put16(ip + 6, 0x4000);
      ip[8] = 64, ip[9] = 17;
      put16(ip + 10, 0);
      put32(ip + 12, fl->dst_ip);
      put32(ip + 16, f->guest_ip);
      put16(ip + 10, fold(sum16(ip, 20, 0)));
      uint8_t *u = ip + 20;
      uint32_t ulen = 8 + (uint32_t)plen;
      put16(u, fl->dst_port);
      put16(u + 2, fl->guest_port);
      put16(u + 4, ulen);
      put16(u + 6, 0);
      uint64_t pseudo = (fl->dst_ip >> 16) + (fl->dst_ip & 0xffff) + (f->guest_ip >> 16) + (f->guest_ip & 0xffff) + 17 + ulen;
      uint32_t c = fold(sum16(u, ulen, pseudo));
      put16(u + 6, c == 0 ? 0xffff : c);
      wiov[w].iov_base = b;
      wiov[w].iov_len = 4 + flen;
      total += 4 + flen;
      w++;
    }
    if (w > 0) {
      if (f->out_len > f->max_queued) fpc_add(f, FPC_REPLY_BACKPRESSURE, (uint64_t)w);
      else if (fp_out(f, wiov, w, total, 1) == 0) fpc_add(f, FPC_REPLIES_OUT, (uint64_t)w);
      else fpc_add(f, FPC_REPLY_BACKPRESSURE, (uint64_t)w);
      __atomic_store_n(&fl->last_used_ns, mono_ns(), __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&f->mu);
    if (n < FP_REPLY_BATCH) return;
  }
}

/* Commands from the main thread: close flows it removed, stop, resume reading. */
static int fp_on_wake(fastpath *f) {
  uint64_t v;
  while (read(f->wake, &v, sizeof v) < 0 && errno == EINTR) {}
  pthread_mutex_lock(&f->mu);
  for (int i = 0; i < f->nflows_hint; i++) {
    fp_flow *fl = &f->flows[i];
    if (fl->state != FL_CLOSING) continue;
    close(fl->fd);
    fl->fd = -1;
    fl->state = FL_FREE;
  }
  int stop = f->stop, resume = f->resume;
  f->resume = 0;
  if (resume && f->paused && f->to_js_len == 0) {
    f->paused = 0;
    fp_set_stream_events(f);
  } else resume = 0;
  pthread_mutex_unlock(&f->mu);
  /* Frames left in rbuf when to_js filled up. */
  if (resume && f->rhave > 0) fp_process_stream(f);
  return stop;
}

static void *fp_thread(void *arg) {
  fastpath *f = arg;
  struct epoll_event evs[64];
  uint64_t spin_until = 0;
  for (;;) {
    /* Spinning, a frame is seen within one epoll_wait instead of after this thread is woken (a
     * halted vCPU's wake-up: tens of µs at the median, up to ms at the tail on the test VM). */
    int n = epoll_wait(f->ep, evs, 64, spin_until && mono_ns() < spin_until ? 0 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n > 0 && f->spin_ns) spin_until = mono_ns() + f->spin_ns;
    for (int i = 0; i < n; i++) {
      uint32_t tag = (uint32_t)evs[i].data.u64;
      uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
      if (tag == FP_TAG_WAKE) {
        if (fp_on_wake(f)) return NULL;
      } else if (tag == FP_TAG_STREAM) {
        if (evs[i].events & EPOLLOUT) {
          pthread_mutex_lock(&f->mu);
          fp_flush_out(f);
          pthread_mutex_unlock(&f->mu);
        }
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) fp_read_stream(f);
      } else if (tag < FP_MAX_FLOWS) {
        /* A slot closed and reused since epoll_wait returned is a different flow: its own event comes. */
        pthread_mutex_lock(&f->mu);
        int ok = f->flows[tag].state == FL_ACTIVE && (uint32_t)f->flows[tag].fd == gen;
        pthread_mutex_unlock(&f->mu);
        if (ok) fp_read_flow(f, (int)tag);
      }
    }
  }
  return NULL;
}

/* On the main thread: hands the engine what the thread queued for it (frames, a stream's end).
 * The frames count as outstanding until the engine returns, so none overtakes them meanwhile. */
static void fp_call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)data;
  fastpath *f = context;
  if (env == NULL || f->closed) return;
  pthread_mutex_lock(&f->mu);
  size_t len = f->to_js_len;
  uint8_t *mine = f->to_js;
  size_t frames = 0;
  for (size_t i = 0; i + 4 <= len; i += 4 + be32(mine + i)) frames++;
  if (len > 0) {
    /* The thread goes on filling the other buffer while the engine reads this one. */
    f->to_js = f->js_side;
    f->js_side = mine;
  }
  f->to_js_len = 0;
  f->js_outstanding += frames;
  f->js_signalled = 0;
  uint32_t closed = f->closed_gen;
  int closed_errno = f->closed_errno;
  f->closed_gen = 0;
  int resume = f->paused;
  pthread_mutex_unlock(&f->mu);
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value undef, args[4];
  napi_get_undefined(env, &undef);
  if (len > 0) napi_get_reference_value(env, f->js_buf[mine == f->js_mem[0] ? 0 : 1], &args[0]);
  else napi_get_null(env, &args[0]);
  napi_create_uint32(env, (uint32_t)len, &args[1]);
  napi_create_uint32(env, closed, &args[2]);
  napi_create_string_utf8(env, closed ? errno_code(closed_errno ? closed_errno : 0) : "", NAPI_AUTO_LENGTH, &args[3]);
  if (closed && closed_errno == 0) napi_create_string_utf8(env, "EOF", NAPI_AUTO_LENGTH, &args[3]);
  if (closed && f->tsfn_refd) {
    pthread_mutex_lock(&f->mu);
    int still = f->stream_fd >= 0;
    pthread_mutex_unlock(&f->mu);
    if (!still) {
      napi_unref_threadsafe_function(env, f->tsfn);
      f->tsfn_refd = 0;
    }
  }
  if (napi_call_function(env, undef, js_cb, 4, args, NULL) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
  pthread_mutex_lock(&f->mu);
  f->js_outstanding -= frames;
  if (resume) f->resume = 1;
  pthread_mutex_unlock(&f->mu);
  if (resume) {
    uint64_t one = 1;
    if (write(f->wake, &one, sizeof one) < 0) {}
  }
}

static void fp_wake(fastpath *f) {
  uint64_t one = 1;
  if (write(f->wake, &one, sizeof one) < 0) {}
}

static void fp_release(fastpath *f) {
  if (--f->refs > 0) return;
  pthread_mutex_destroy(&f->mu);
  free(f->rbuf);
  free(f->js_mem[0]);
  free(f->js_mem[1]);
  free(f->out);
  free(f->sends);
  free(f->replies);
  free(f);
}

/* Stops and joins the thread and closes every fd; main thread. */
static void fp_shutdown(fastpath *f) {
  if (f->closed) return;
  f->closed = 1;
  if (f->thread_started) {
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_mutex_unlock(&f->mu);
    fp_wake(f);
    pthread_join(f->thread, NULL);
    f->thread_started = 0;
  }
  for (int i = 0; i < f->nflows_hint; i++) {
    if (f->flows[i].state != FL_FREE) close(f->flows[i].fd);
    f->flows[i].state = FL_FREE;
    f->flows[i].fd = -1;
  }
  if (f->stream_fd >= 0) close(f->stream_fd);
  f->stream_fd = -1;
  close(f->ep);
  close(f->wake);
  for (int i = 0; i < 2; i++)
    if (f->js_buf[i]) napi_delete_reference(f->env, f->js_buf[i]);
  f->js_buf[0] = f->js_buf[1] = NULL;
  napi_release_threadsafe_function(f->tsfn, napi_tsfn_abort);
}

static void fp_tsfn_finalize(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  fp_release(data);
}

static void fp_env_cleanup(void *arg);
static void fp_external_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  fastpath *f = data;
  if (!f->closed) {
    napi_remove_env_cleanup_hook(env, fp_env_cleanup, f);
    fp_shutdown(f);
  }
  fp_release(f);
}

static void fp_env_cleanup(void *arg) { fp_shutdown(arg); }

static fastpath *get_fp(napi_env env, napi_value v) {
  void *data = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external) return NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok) return NULL;
  fastpath *f = data;
  return f && !f->closed ? f : NULL;
}

static int get_mac(napi_env env, napi_value v, uint8_t out[6]) {
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok || len != 6) return -1;
  memcpy(out, data, 6);
  return 0;
}

/* fastPathCreate(gatewayMac, gatewayIp, guestIp, maxQueuedBytes, onEvent, spinMs?) -> handle */
static napi_value fp_create(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t mac[6];
  uint32_t gw, guest;
  double maxq, spin = 0;
  napi_valuetype cbt = napi_undefined;
  if (argc >= 6 && (napi_get_value_double(env, argv[5], &spin) != napi_ok || !(spin >= 0) || spin > 60000)) {
    napi_throw_type_error(env, NULL, "fastPathCreate: spinMs must be a number from 0 to 60000");
    return NULL;
  }
  if (argc >= 5) napi_typeof(env, argv[4], &cbt);
  if (argc < 5 || get_mac(env, argv[0], mac) != 0 || napi_get_value_uint32(env, argv[1], &gw) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &guest) != napi_ok || napi_get_value_double(env, argv[3], &maxq) != napi_ok || !(maxq >= 0) ||
      cbt != napi_function) {
    napi_throw_type_error(env, NULL, "fastPathCreate(gatewayMac: Buffer(6), gatewayIp: number, guestIp: number, maxQueuedBytes: number, onEvent: function)");
    return NULL;
  }
  fastpath *f = calloc(1, sizeof *f);
  if (f == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  f->rbuf = malloc(FP_READ_BUF);
  f->js_mem[0] = malloc(FP_TO_JS_CAP);
  f->js_mem[1] = malloc(FP_TO_JS_CAP);
  f->to_js = f->js_mem[0];
  f->js_side = f->js_mem[1];
  f->sends = malloc(FP_MAX_SENDS * sizeof *f->sends);
  f->ep = epoll_create1(EPOLL_CLOEXEC);
  f->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int e = errno;
  if (f->rbuf == NULL || f->js_mem[0] == NULL || f->js_mem[1] == NULL || f->sends == NULL || f->ep < 0 || f->wake < 0) {
    if (f->ep >= 0) close(f->ep);
    if (f->wake >= 0) close(f->wake);
    free(f->rbuf), free(f->js_mem[0]), free(f->js_mem[1]), free(f->sends), free(f);
    napi_throw(env, make_error(env, e ? e : ENOMEM, "fastPathCreate"));
    return NULL;
  }
  pthread_mutex_init(&f->mu, NULL);
  memcpy(f->gw_mac, mac, 6);
  f->gw_ip = gw, f->guest_ip = guest;
  f->max_queued = (size_t)maxq;
  f->spin_ns = (uint64_t)(spin * 1e6);
  f->stream_fd = -1;
  f->last_slot = -1;
  f->env = env;
  for (int i = 0; i < FP_MAX_FLOWS; i++) f->flows[i].fd = -1;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = FP_TAG_WAKE};
  epoll_ctl(f->ep, EPOLL_CTL_ADD, f->wake, &ev);
  for (int i = 0; i < 2; i++) {
    /* The memory is freed with f, after these references are gone; the engine keeps no view past a call. */
    napi_value b;
    if (napi_create_external_buffer(env, FP_TO_JS_CAP, f->js_mem[i], NULL, NULL, &b) != napi_ok || napi_create_reference(env, b, 1, &f->js_buf[i]) != napi_ok) {
      for (int k = 0; k < i; k++) napi_delete_reference(env, f->js_buf[k]);
      close(f->ep), close(f->wake);
      free(f->rbuf), free(f->js_mem[0]), free(f->js_mem[1]), free(f->sends), free(f);
      napi_throw_error(env, NULL, "fastPathCreate: napi_create_external_buffer failed");
      return NULL;
    }
  }
  napi_value name;
  CHECK(env, napi_create_string_utf8(env, "arca:fastpath", NAPI_AUTO_LENGTH, &name));
  if (napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, f, fp_tsfn_finalize, f, fp_call_js, &f->tsfn) != napi_ok) {
    for (int k = 0; k < 2; k++) napi_delete_reference(env, f->js_buf[k]);
    close(f->ep), close(f->wake);
    free(f->rbuf), free(f->js_mem[0]), free(f->js_mem[1]), free(f->sends), free(f);
    napi_throw_error(env, NULL, "fastPathCreate: napi_create_threadsafe_function failed");
    return NULL;
  }
  napi_unref_threadsafe_function(env, f->tsfn);
  f->refs = 2;
  /* A small stack: the thread's buffers are on the heap, and a daemon runs one per VM. */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 128 * 1024);
  e = pthread_create(&f->thread, &attr, fp_thread, f);
  pthread_attr_destroy(&attr);
  if (e != 0) {
    f->closed = 1;
    close(f->ep), close(f->wake);
    napi_release_threadsafe_function(f->tsfn, napi_tsfn_abort);
    f->refs--; /* the external was never made */
    napi_throw(env, make_error(env, e, "fastPathCreate: pthread_create"));
    return NULL;
  }
  f->thread_started = 1;
  /* Named here, before anyone can look, so that a tool (the bench, top -H) finds it among Node's threads. */
  pthread_setname_np(f->thread, "arca-fnat");
  napi_add_env_cleanup_hook(env, fp_env_cleanup, f);
  napi_value ext;
  CHECK(env, napi_create_external(env, f, fp_external_finalize, NULL, &ext));
  return ext;
}

static fastpath *fp_arg(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, const char *usage) {
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok) return NULL;
  fastpath *f = *argc >= 1 ? get_fp(env, argv[0]) : NULL;
  if (f == NULL) napi_throw_type_error(env, NULL, usage);
  return f;
}

/* The calls that name a flow, `(handle, slot, ...)`: the engine and its flow slot, or NULL having thrown. */
static fastpath *fp_slot_arg(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, const char *usage, int32_t *slot) {
  fastpath *f = fp_arg(env, info, argc, argv, usage);
  if (f == NULL) return NULL;
  if (*argc < 2 || napi_get_value_int32(env, argv[1], slot) != napi_ok || *slot < 0 || *slot >= FP_MAX_FLOWS) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  return f;
}

/* fastPathConnect(h, path) -> generation: connects to QEMU's unix socket and hands it to the thread. */
static napi_value fp_connect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  fastpath *f = fp_arg(env, info, &argc, argv, "fastPathConnect(handle, path: string)");
  if (f == NULL) return NULL;
  char *path = NULL;
  if (argc < 2 || get_string(env, argv[1], &path) != 0 || path == NULL) {
    free(path);
    napi_throw_type_error(env, NULL, "fastPathConnect(handle, path: string)");
    return NULL;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    free(path);
    napi_throw(env, make_error(env, ENAMETOOLONG, "fastPathConnect"));
    return NULL;
  }
  strcpy(sa.sun_path, path);
  free(path);
  /* Non-blocking: a unix connect then completes or fails at once (EAGAIN when the listener's backlog
   * is full), and never holds up the main thread. */
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    napi_throw(env, make_error(env, e, "connect"));
    return NULL;
  }
  pthread_mutex_lock(&f->mu);
  int busy = f->stream_fd >= 0;
  if (!busy) {
    f->stream_fd = fd;
    f->stream_gen++;
    if (f->stream_gen == 0) f->stream_gen = 1;
    f->out_len = 0, f->out_armed = 0, f->paused = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = FP_TAG_STREAM};
    epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev);
  }
  uint32_t gen = f->stream_gen;
  pthread_mutex_unlock(&f->mu);
  if (busy) {
    close(fd);
    napi_throw(env, make_error(env, EISCONN, "fastPathConnect: a stream is already attached"));
    return NULL;
  }
  if (!f->tsfn_refd) {
    napi_ref_threadsafe_function(env, f->tsfn);
    f->tsfn_refd = 1;
  }
  napi_value r;
  CHECK(env, napi_create_uint32(env, gen, &r));
  return r;
}

/* fastPathDisconnect(h): drops the stream (the thread was reading it: it is shut down, then closed there). */
static napi_value fp_disconnect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  fastpath *f = fp_arg(env, info, &argc, argv, "fastPathDisconnect(handle)");
  if (f == NULL) return NULL;
  pthread_mutex_lock(&f->mu);
  /* shutdown(2) makes the thread read EOF and close the fd itself, in its own time. */
  if (f->stream_fd >= 0) shutdown(f->stream_fd, SHUT_RDWR);
  pthread_mutex_unlock(&f->mu);
  if (f->tsfn_refd) {
    napi_unref_threadsafe_function(env, f->tsfn);
    f->tsfn_refd = 0;
  }
  return NULL;
}

/* fastPathGuestMac(h, mac|null) */
static napi_value fp_guest_mac(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  fastpath *f = fp_arg(env, info, &argc, argv, "fastPathGuestMac(handle, mac: Buffer(6) | null)");
  if (f == NULL) return NULL;
  uint8_t mac[6];
  napi_valuetype t = napi_undefined;
  if (argc >= 2) napi_typeof(env, argv[1], &t);
  int have = t != napi_null && t != napi_undefined;
  if (have && get_mac(env, argv[1], mac) != 0) {
    napi_throw_type_error(env, NULL, "fastPathGuestMac(handle, mac: Buffer(6) | null)");
    return NULL;
  }
  pthread_mutex_lock(&f->mu);
  if (have) memcpy(f->guest_mac, mac, 6);
  f->have_guest_mac = have;
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

/* fastPathAddFlow(h, fd, dstIp, dstPort, guestPort) -> slot: the thread owns fd from now on. */
static napi_value fp_add_flow(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  const char *usage = "fastPathAddFlow(handle, fd: number, dstIp: number, dstPort: number, guestPort: number)";
  fastpath *f = fp_arg(env, info, &argc, argv, usage);
  if (f == NULL) return NULL;
  int32_t fd;
  uint32_t ip, dport, gport;
  if (argc < 5 || napi_get_value_int32(env, argv[1], &fd) != napi_ok || napi_get_value_uint32(env, argv[2], &ip) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &dport) != napi_ok || napi_get_value_uint32(env, argv[4], &gport) != napi_ok || fd < 0 ||
      dport == 0 || dport > 65535 || gport == 0 || gport > 65535) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  pthread_mutex_lock(&f->mu);
  int slot = -1;
  for (int i = 0; i < FP_MAX_FLOWS; i++)
    if (f->flows[i].state == FL_FREE) {
      slot = i;
      break;
    }
  if (slot >= 0) {
    fp_flow *fl = &f->flows[slot];
    fl->state = FL_ACTIVE;
    fl->fd = fd;
    fl->dst_ip = ip, fl->dst_port = (uint16_t)dport, fl->guest_port = (uint16_t)gport;
    __atomic_store_n(&fl->last_used_ns, 0, __ATOMIC_RELAXED);
    if (slot >= f->nflows_hint) f->nflows_hint = slot + 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)(uint32_t)fd << 32) | (uint32_t)slot};
    if (epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
      fl->state = FL_FREE;
      fl->fd = -1;
      slot = -2;
    }
  }
  pthread_mutex_unlock(&f->mu);
  if (slot < 0) {
    napi_throw(env, make_error(env, slot == -1 ? EMFILE : errno, "fastPathAddFlow"));
    return NULL;
  }
  napi_value r;
  CHECK(env, napi_create_int32(env, slot, &r));
  return r;
}

/* fastPathRemoveFlow(h, slot): no more frames or replies; the thread closes the socket. */
static napi_value fp_remove_flow(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t slot;
  fastpath *f = fp_slot_arg(env, info, &argc, argv, "fastPathRemoveFlow(handle, slot: number)", &slot);
  if (f == NULL) return NULL;
  pthread_mutex_lock(&f->mu);
  fp_flow *fl = &f->flows[slot];
  int was = fl->state == FL_ACTIVE;
  if (was) {
    epoll_ctl(f->ep, EPOLL_CTL_DEL, fl->fd, NULL);
    fl->state = FL_CLOSING;
  }
  pthread_mutex_unlock(&f->mu);
  if (was) fp_wake(f);
  return NULL;
}

/* fastPathSend(h, slot, buf, off, len) -> 0 or -errno: the engine's own sends (a flow's first datagrams). */
static napi_value fp_send_one(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  const char *usage = "fastPathSend(handle, slot: number, buf: Buffer, off: number, len: number)";
  int32_t slot, off, len;
  fastpath *f = fp_slot_arg(env, info, &argc, argv, usage, &slot);
  if (f == NULL) return NULL;
  void *data;
  size_t blen;
  if (argc < 5 || napi_get_buffer_info(env, argv[2], &data, &blen) != napi_ok || napi_get_value_int32(env, argv[3], &off) != napi_ok ||
      napi_get_value_int32(env, argv[4], &len) != napi_ok || off < 0 || len < 0 || (size_t)off + (size_t)len > blen) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  int rc = -EBADF;
  pthread_mutex_lock(&f->mu);
  fp_flow *fl = &f->flows[slot];
  if (fl->state == FL_ACTIVE) {
    ssize_t w;
    do w = send(fl->fd, (uint8_t *)data + off, (size_t)len, MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    rc = w < 0 ? -errno : 0;
  }
  pthread_mutex_unlock(&f->mu);
  napi_value r;
  CHECK(env, napi_create_int32(env, rc, &r));
  return r;
}

/* fastPathWrite(h, framed) -> true, or false when dropped (no stream, or the guest not reading). */
static napi_value fp_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  fastpath *f = fp_arg(env, info, &argc, argv, "fastPathWrite(handle, framed: Buffer)");
  if (f == NULL) return NULL;
  void *data;
  size_t len;
  if (argc < 2 || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "fastPathWrite(handle, framed: Buffer)");
    return NULL;
  }
  struct iovec iov = {.iov_base = data, .iov_len = len};
  pthread_mutex_lock(&f->mu);
  int rc = len == 0 ? 0 : fp_out(f, &iov, 1, len, 0);
  pthread_mutex_unlock(&f->mu);
  napi_value r;
  CHECK(env, napi_get_boolean(env, rc == 0, &r));
  return r;
}

/* fastPathFlowInfo(h, slot) -> [ms since the thread last used it (-1: never), local port] */
static napi_value fp_flow_info(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t slot;
  fastpath *f = fp_slot_arg(env, info, &argc, argv, "fastPathFlowInfo(handle, slot: number)", &slot);
  if (f == NULL) return NULL;
  double ago = -1;
  int port = 0;
  pthread_mutex_lock(&f->mu);
  fp_flow *fl = &f->flows[slot];
  if (fl->state == FL_ACTIVE) {
    uint64_t t = __atomic_load_n(&fl->last_used_ns, __ATOMIC_RELAXED);
    if (t) ago = (double)(mono_ns() - t) / 1e6;
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    if (getsockname(fl->fd, (struct sockaddr *)&sa, &sl) == 0 && sa.sin_family == AF_INET) port = ntohs(sa.sin_port);
  }
  pthread_mutex_unlock(&f->mu);
  napi_value out, a, b;
  CHECK(env, napi_create_array_with_length(env, 2, &out));
  CHECK(env, napi_create_double(env, ago, &a));
  CHECK(env, napi_create_int32(env, port, &b));
  CHECK(env, napi_set_element(env, out, 0, a));
  CHECK(env, napi_set_element(env, out, 1, b));
  return out;
}

/* fastPathStats(h, out: Float64Array) fills the counters (FPC_* order) and the bytes queued to the guest. */
static napi_value fp_stats(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  fastpath *f = fp_arg(env, info, &argc, argv, "fastPathStats(handle, out: Float64Array)");
  if (f == NULL) return NULL;
  napi_typedarray_type t;
  size_t n;
  void *data;
  if (argc < 2 || napi_get_typedarray_info(env, argv[1], &t, &n, &data, NULL, NULL) != napi_ok || t != napi_float64_array || n < FPC_N + 1) {
    napi_throw_type_error(env, NULL, "fastPathStats(handle, out: Float64Array of at least counters + 1)");
    return NULL;
  }
  double *d = data;
  for (int i = 0; i < FPC_N; i++) d[i] = (double)__atomic_load_n(&f->counters[i], __ATOMIC_RELAXED);
  pthread_mutex_lock(&f->mu);
  d[FPC_N] = (double)f->out_len;
  pthread_mutex_unlock(&f->mu);
  return NULL;
}

/* fastPathMatch(h, buf, off, len) -> the flow slot the thread would send this frame on, or -1 (tests). */
static napi_value fp_match_js(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  const char *usage = "fastPathMatch(handle, buf: Buffer, off: number, len: number)";
  fastpath *f = fp_arg(env, info, &argc, argv, usage);
  if (f == NULL) return NULL;
  void *data;
  size_t blen;
  int32_t off, len;
  if (argc < 4 || napi_get_buffer_info(env, argv[1], &data, &blen) != napi_ok || napi_get_value_int32(env, argv[2], &off) != napi_ok ||
      napi_get_value_int32(env, argv[3], &len) != napi_ok || off < 0 || len < 0 || (size_t)off + (size_t)len > blen) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  int reason;
  pthread_mutex_lock(&f->mu);
  int slot = fp_match(f, (uint8_t *)data + off, (size_t)len, &reason);
  pthread_mutex_unlock(&f->mu);
  napi_value r;
  CHECK(env, napi_create_int32(env, slot, &r));
  return r;
}

/* fastPathClose(h): joins the thread and closes the stream and every flow socket. */
static napi_value fp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "fastPathClose(handle)");
    return NULL;
  }
  fastpath *f = data;
  if (f->closed) return NULL;
  napi_remove_env_cleanup_hook(env, fp_env_cleanup, f);
  fp_shutdown(f);
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
      {"fastPathCreate", NULL, fp_create, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathConnect", NULL, fp_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathDisconnect", NULL, fp_disconnect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathGuestMac", NULL, fp_guest_mac, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathAddFlow", NULL, fp_add_flow, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathRemoveFlow", NULL, fp_remove_flow, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathSend", NULL, fp_send_one, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathWrite", NULL, fp_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathFlowInfo", NULL, fp_flow_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathStats", NULL, fp_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathMatch", NULL, fp_match_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"fastPathClose", NULL, fp_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
