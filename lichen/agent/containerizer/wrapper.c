/*
 * lichen-wrap: the parent of one task's process tree.
 *
 *   lichen-wrap <sandbox> [--cgroup-procs PATH]... [--user NAME] -- argv...
 *
 * The agent starts it in a new session. It forks the task; the child makes itself a
 * process group leader, joins the given cgroups, resets signals, redirects
 * stdout/stderr to <sandbox>/stdout and <sandbox>/stderr (append), optionally drops to
 * a user, and execs argv (exit 127 with a message on stderr if that fails).
 *
 * The wrapper writes the child's pid (= its process group id) to <sandbox>/.lichen/pid,
 * waits for it, writes the raw wait status to <sandbox>/.lichen/status (tmp + rename,
 * so a reader sees all of it or nothing) and exits. It ignores SIGTERM, SIGINT and
 * SIGHUP so that killing the task's process group cannot stop it before the status is
 * recorded. The agent need not be alive for any of this: the status survives it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CGROUPS 32

static void die(const char *what) {
    fprintf(stderr, "lichen-wrap: %s: %s\n", what, strerror(errno));
    _exit(127);
}

static int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write `value` followed by a newline to dir/name atomically. */
static int write_file_atomic(const char *dir, const char *name, long value) {
    char path[4096], tmp[4096], buf[64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int len = snprintf(buf, sizeof buf, "%ld\n", value);
    if (write_all(fd, buf, (size_t)len) < 0 || fsync(fd) < 0) {
        close(fd);
        return -1;
    }
    if (close(fd) < 0) return -1;
    return rename(tmp, path);
}

static void redirect(const char *sandbox, const char *name, int target) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", sandbox, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) die(path);
    if (dup2(fd, target) < 0) die("dup2");
    if (fd != target) close(fd);
}

static void join_cgroup(const char *procs) {
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    int fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) die(procs);
    if (write_all(fd, buf, (size_t)len) < 0) die(procs);
    close(fd);
}

static void reset_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &sa, NULL); /* fails harmlessly for signals libc reserves */
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void drop_to(const char *user) {
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "lichen-wrap: unknown user '%s'\n", user);
        _exit(127);
    }
    if (setgid(pw->pw_gid) < 0) die("setgid");
    if (initgroups(user, pw->pw_gid) < 0) die("initgroups");
    if (setuid(pw->pw_uid) < 0) die("setuid");
}

static void usage(void) {
    fprintf(stderr,
            "usage: lichen-wrap <sandbox> [--cgroup-procs PATH]... [--user NAME] -- argv...\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 4) usage();
    const char *sandbox = argv[1];
    const char *cgroups[MAX_CGROUPS];
    int ncgroups = 0;
    const char *user = NULL;
    int i = 2;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        } else if (strcmp(argv[i], "--cgroup-procs") == 0 && i + 1 < argc) {
            if (ncgroups == MAX_CGROUPS) usage();
            cgroups[ncgroups++] = argv[++i];
        } else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc) {
            user = argv[++i];
        } else {
            usage();
        }
    }
    if (i >= argc) usage();
    char **task_argv = &argv[i];

    char meta[4096];
    snprintf(meta, sizeof meta, "%s/.lichen", sandbox);

    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);

    /* Closed by the child's exec (or exit): the pid file appears only once the task's
       signal dispositions are its own, so a SIGTERM sent as soon as it is read counts. */
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) {
        perror("lichen-wrap: pipe");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("lichen-wrap: fork");
        return 1;
    }
    if (child == 0) {
        close(ready[0]);
        if (setpgid(0, 0) < 0) die("setpgid");
        redirect(sandbox, "stdout", STDOUT_FILENO);
        redirect(sandbox, "stderr", STDERR_FILENO);
        for (int c = 0; c < ncgroups; c++) join_cgroup(cgroups[c]);
        reset_signals();
        if (user != NULL) drop_to(user);
        execvp(task_argv[0], task_argv);
        fprintf(stderr, "Failed to execute '%s': %s\n", task_argv[0], strerror(errno));
        _exit(127);
    }
    /* Also set it here: whichever of parent and child runs first, the group exists
       before the pid file names it. EACCES after the child's exec is fine. */
    setpgid(child, child);
    close(ready[1]);
    char byte;
    while (read(ready[0], &byte, 1) < 0 && errno == EINTR) {
    }
    close(ready[0]);
    if (write_file_atomic(meta, "pid", (long)child) < 0) {
        perror("lichen-wrap: writing pid");
        kill(child, SIGKILL);
    }

    int status;
    for (;;) {
        pid_t r = waitpid(child, &status, 0);
        if (r == child) break;
        if (r < 0 && errno != EINTR) {
            perror("lichen-wrap: waitpid");
            return 1;
        }
    }
    if (write_file_atomic(meta, "status", (long)status) < 0) {
        perror("lichen-wrap: writing status");
        return 1;
    }
    return 0;
}
