/*
 * pgtender_clock: an LD_PRELOAD shim that moves the wall clock of the processes it is loaded into
 * (the calendar-matrix PostgreSQL cluster, see .ci/setup-pg-clock.sh) by an offset read from a file.
 *
 * Why not libfaketime: libfaketime 0.9.10 returns the *real* time while a process is inside one of
 * its wrapped waits (epoll_wait, poll, ...). PostgreSQL's SIGALRM handler reads the clock while the
 * backend waits on a latch, so with a moved clock statement_timeout and lock_timeout never fire
 * (clock moved forward) or all fire at once (moved back). This shim only fakes the wall-clock reads
 * and leaves every wait and every monotonic clock alone.
 *
 * The file (path in PGTENDER_CLOCK_FILE) holds one signed decimal number of seconds, e.g.
 * "+2500000.25": wall clock = real wall clock + offset. It is re-read at most every 20 ms
 * (open/read/close only: safe inside signal handlers), so a test moves the clock by replacing it.
 * A missing or unreadable file keeps the last offset (0 at start).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL
#define RECHECK_NS 20000000LL

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static const char *offset_file;
static volatile int64_t offset_ns;
static volatile int64_t next_check_ns;

__attribute__((constructor)) static void pgtender_clock_init(void)
{
    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    offset_file = getenv("PGTENDER_CLOCK_FILE");
}

static int parse_offset(const char *s, int64_t *out)
{
    int64_t sign = 1, whole = 0, frac = 0, scale = NS;
    int digits = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '+' || *s == '-')
        sign = (*s++ == '-') ? -1 : 1;
    for (; *s >= '0' && *s <= '9'; s++, digits++)
        whole = whole * 10 + (*s - '0');
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++, digits++)
            if (scale > 1) {
                scale /= 10;
                frac += (*s - '0') * scale;
            }
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    if (digits == 0 || *s != '\0' || whole > 100LL * 366 * 86400)
        return -1;
    *out = sign * (whole * NS + frac);
    return 0;
}

static int64_t current_offset(void)
{
    struct timespec mono;
    char buf[64];
    int64_t now, parsed;
    ssize_t n;
    int fd;

    if (offset_file == NULL || real_clock_gettime == NULL)
        return 0;
    if (real_clock_gettime(CLOCK_MONOTONIC_COARSE, &mono) != 0)
        return offset_ns;
    now = mono.tv_sec * NS + mono.tv_nsec;
    if (now < next_check_ns)
        return offset_ns;
    next_check_ns = now + RECHECK_NS;
    fd = open(offset_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return offset_ns;
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n > 0) {
        buf[n] = '\0';
        if (parse_offset(buf, &parsed) == 0)
            offset_ns = parsed;
    }
    return offset_ns;
}

static int shift(struct timespec *tp)
{
    int64_t t = tp->tv_sec * NS + tp->tv_nsec + current_offset();
    tp->tv_sec = t / NS;
    tp->tv_nsec = t % NS;
    if (tp->tv_nsec < 0) {
        tp->tv_sec -= 1;
        tp->tv_nsec += NS;
    }
    return 0;
}

int clock_gettime(clockid_t id, struct timespec *tp)
{
    int rc;
    if (real_clock_gettime == NULL)
        pgtender_clock_init();
    rc = real_clock_gettime(id, tp);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        shift(tp);
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    struct timespec ts;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}

int timespec_get(struct timespec *ts, int base)
{
    if (base != TIME_UTC || clock_gettime(CLOCK_REALTIME, ts) != 0)
        return 0;
    return base;
}
