/* The floor for the substitute bench: what the verification substitution
 * needs costs when written in C with the same libraries raisin calls
 * (OpenSSL's SHA-256, libzstd), and nothing else: no NAR parsing, no store,
 * no Python.
 *
 *   floor HOST PORT WORKERS PATH:OUT:NARHASH ...
 *
 * WORKERS threads take the jobs in turn. Each job GETs PATH over its own
 * HTTP/1.1 connection (Content-Length bodies only), zstd-decompresses the
 * body through one 1 MiB buffer, hashes the result (NarHash: what the
 * narinfo's signature covers; the unsigned FileHash is checked by neither
 * raisin nor Nix), writes it to OUT and fsyncs it (raisin fsyncs a path
 * before registering it). Exit 1 when a hash differs from the hex given, 2 on
 * any I/O or HTTP error, so the bench knows the work was really done.
 *
 * Built by bench_cache.py when cc, OpenSSL's and libzstd's headers are there:
 *   cc -O2 -o floor floor.c -lcrypto -lzstd -lpthread
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zstd.h>

#define BUF (1 << 20)

static const char *host;
static int port;
static char **jobs;
static int njobs, next_job;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* sys: the failure was a system call's, so errno says why */
static void fail(int code, const char *what, const char *path, int sys) {
    int e = errno;
    fprintf(stderr, "floor: %s: %s%s%s\n", path, what, sys ? ": " : "", sys ? strerror(e) : "");
    exit(code);
}
#define die_sys(what, path) fail(2, what, path, 1)
#define die(what, path) fail(2, what, path, 0)

static void write_all(int fd, const char *p, size_t n, const char *path) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) die_sys("write", path);
        p += w;
        n -= (size_t)w;
    }
}

static void check(EVP_MD_CTX *ctx, const char *hex, const char *what, const char *path) {
    unsigned char d[32];
    unsigned int len = 0;
    char got[65];
    EVP_DigestFinal_ex(ctx, d, &len);
    for (unsigned i = 0; i < 32; i++) sprintf(got + 2 * i, "%02x", d[i]);
    if (strcmp(got, hex) != 0) {
        fprintf(stderr, "floor: %s: %s %s, expected %s\n", path, what, got, hex);
        exit(1);
    }
}

static void one(char *job, char *in, char *dec) {
    char *save = NULL;  /* strtok_r: the workers split their jobs at the same time */
    char *path = strtok_r(job, ":", &save), *out = strtok_r(NULL, ":", &save);
    char *nhex = strtok_r(NULL, ":", &save);
    if (!nhex) die("job is not PATH:OUT:NARHASH", job);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, host, &a.sin_addr);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) die_sys("connect", path);
    char req[2048];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host);
    write_all(s, req, (size_t)n, path);

    size_t got = 0;
    char *body = NULL;
    long long left = -1;
    while (!body) {  /* the headers, and whatever part of the body came with them */
        ssize_t r = read(s, in + got, BUF - got);
        if (r <= 0) die("connection closed or failed in the headers", path);
        got += (size_t)r;
        in[got] = 0;
        char *end = strstr(in, "\r\n\r\n");
        if (!end) continue;
        if (strncmp(in, "HTTP/1.1 200", 12) != 0) die("not 200", path);
        char *cl = strcasestr(in, "\r\ncontent-length:");
        if (!cl || cl > end) die("no Content-Length", path);
        left = atoll(cl + 17);
        body = end + 4;
    }
    size_t have = got - (size_t)(body - in);

    EVP_MD_CTX *nh = EVP_MD_CTX_new();
    EVP_DigestInit_ex(nh, EVP_sha256(), NULL);
    ZSTD_DCtx *z = ZSTD_createDCtx();
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) die_sys("open", out);
    char *p = body;
    for (;;) {
        if ((long long)have > left) die("body longer than Content-Length", path);
        left -= (long long)have;
        ZSTD_inBuffer ib = {p, have, 0};
        ZSTD_outBuffer ob = {dec, BUF, BUF};
        /* a full output buffer may leave output inside zstd: go on until it is not full */
        while (ib.pos < ib.size || ob.pos == ob.size) {
            ob.pos = 0;
            size_t rc = ZSTD_decompressStream(z, &ob, &ib);
            if (ZSTD_isError(rc)) die(ZSTD_getErrorName(rc), path);
            EVP_DigestUpdate(nh, dec, ob.pos);
            write_all(fd, dec, ob.pos, out);
        }
        if (left == 0) break;
        ssize_t r = read(s, in, BUF);
        if (r <= 0) die("connection closed or failed in the body", path);
        p = in;
        have = (size_t)r;
    }
    if (fsync(fd) != 0) die_sys("fsync", out);
    close(fd);
    close(s);
    check(nh, nhex, "NarHash", path);
    EVP_MD_CTX_free(nh);
    ZSTD_freeDCtx(z);
}

static void *worker(void *unused) {
    (void)unused;
    char *in = malloc(BUF + 1), *dec = malloc(BUF);
    if (!in || !dec) die_sys("malloc", "-");
    for (;;) {
        pthread_mutex_lock(&mu);
        int i = next_job++;
        pthread_mutex_unlock(&mu);
        if (i >= njobs) break;
        one(jobs[i], in, dec);
    }
    free(in);
    free(dec);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: floor HOST PORT WORKERS PATH:OUT:NARHASH...\n");
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    int nw = atoi(argv[3]);
    if (nw < 1 || nw > 64) nw = 1;
    jobs = argv + 4;
    njobs = argc - 4;
    pthread_t t[64];
    for (int i = 0; i < nw; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < nw; i++) pthread_join(t[i], NULL);
    return 0;
}
