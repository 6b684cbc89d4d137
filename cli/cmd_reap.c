/* cli/cmd_reap.c - `tether reap -b slurm`: cancel the Slurm jobs whose
 * supervisor is gone.
 *
 * The slurm backend names every job PREFIX:HOST:PID:STARTTIME:ACTOR (the
 * owning supervisor's short host name, pid and start time in clock ticks
 * since boot, from /proc/PID/stat). A job whose owner is on this host and
 * no longer runs (no such pid, or a pid reused by another process) is
 * cancelled: `scancel --signal=KILL JOB.0` (the step, at once), then
 * `scancel JOB`. Jobs owned on other hosts are listed, never touched: run
 * `tether reap` there. Every Slurm command is bounded (10 s). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

static const char reap_usage[] =
    "usage: tether reap [-c FILE] [-b NAME] [--dry-run]\n"
    "List the Slurm jobs of the slurm backend (job names PREFIX:HOST:PID:START:ACTOR)\n"
    "and cancel those whose supervising process is gone: the case where a\n"
    "supervisor died and neither srun nor Slurm's InactiveLimit has ended its\n"
    "steps yet. Jobs owned on another host are listed, not touched.\n"
    "  -c, --config FILE   configuration (the backend's job_name option is the prefix)\n"
    "  -b, --backend NAME  the slurm backend's entry (default: slurm)\n"
    "  -n, --dry-run       list what would be cancelled, cancel nothing\n"
    "Needs squeue and scancel in PATH and SLURM_CONF (or /etc/slurm) to reach\n"
    "the controller. Exit 0 when every orphaned job was cancelled (or none\n"
    "was found), 1 when a Slurm command failed, 2 on a usage or configuration error.\n";

#define CMD_TIMEOUT_MS 10000

/* Run argv (searched in PATH), output into out; bounded by CMD_TIMEOUT_MS.
 * Returns the exit status, or -1 (could not start, killed, timed out). */
static int run(char *const argv[], char *out, size_t n)
{
    int p[2];
    out[0] = '\0';
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc) {
        close(p[0]);
        snprintf(out, n, "%s: %s", argv[0], strerror(rc));
        return -1;
    }
    size_t got = 0;
    int64_t deadline = tether_now_ns() + (int64_t)CMD_TIMEOUT_MS * 1000000;
    int timed_out = 0;
    for (;;) {
        int64_t left = deadline - tether_now_ns();
        if (left <= 0) {
            timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        if (poll(&pf, 1, (int)(left / 1000000) + 1) <= 0)
            continue;
        char sink[512];
        char *dst = got + 1 < n ? out + got : sink;
        size_t room = got + 1 < n ? n - 1 - got : sizeof sink;
        ssize_t r = read(p[0], dst, room);
        if (r <= 0)
            break;
        if (dst != sink)
            got += (size_t)r;
    }
    out[got] = '\0';
    close(p[0]);
    int st;
    /* the command closed its output (exiting) or was SIGKILLed: waitpid
     * returns promptly */
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (timed_out) {
        snprintf(out, n, "%s did not answer within %d s", argv[0], CMD_TIMEOUT_MS / 1000);
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Start time (clock ticks since boot) of process `pid`, or 0 if none. */
static unsigned long long start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return 0;
    size_t got = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[got] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long t = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                            "%*d %*d %llu", &t) != 1)
        return 0;
    return t;
}

int cmd_reap(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"backend", required_argument, NULL, 'b'},
        {"dry-run", no_argument, NULL, 'n'},      {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *backend = "slurm";
    int dry = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:b:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'b': backend = optarg; break;
        case 'n': dry = 1; break;
        case 'h': fputs(reap_usage, stdout); return EXIT_OK;
        default:
            cli_usage_error("tether reap", reap_usage, "unknown or incomplete option '%s'",
                            argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_usage_error("tether reap", reap_usage, "unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    struct tether_config *cfg = cli_load_config("tether reap", config);
    if (!cfg)
        return EXIT_USAGE;
    const struct tether_backend_config *bc = tether_config_find(cfg, backend);
    if (!bc) {
        fprintf(stderr, "tether reap: %s: no backend named '%s'\n", cfg->path, backend);
        tether_config_free(cfg);
        return EXIT_USAGE;
    }
    struct tether_plugin_info info;
    struct tether_error err;
    if (tether_plugin_probe(bc->path, &info, &err)) {
        fprintf(stderr, "tether reap: %s\n", err.msg);
        tether_config_free(cfg);
        return EXIT_USAGE;
    }
    if (strcmp(info.name, "slurm") != 0) {
        fprintf(stderr, "tether reap: backend '%s' is the %s plugin: only the slurm backend keeps "
                        "a ledger of jobs to reap\n", backend, info.name);
        tether_config_free(cfg);
        return EXIT_USAGE;
    }
    char prefix[256] = "tether";
    for (size_t i = 0; i < bc->n_options; i++)
        if (!strcmp(bc->options[i].key, "job_name"))
            snprintf(prefix, sizeof prefix, "%s", bc->options[i].value);
    tether_config_free(cfg);

    char host[256] = "";
    gethostname(host, sizeof host - 1);
    host[strcspn(host, ".")] = '\0';
    static char out[1 << 20];
    char *squeue[] = {"squeue", "-h", "-o", "%i|%j|%T", NULL};
    if (run(squeue, out, sizeof out) != 0) {
        fprintf(stderr, "tether reap: squeue: %s\n", out);
        return EXIT_FAIL;
    }
    int status = EXIT_OK, found = 0, orphans = 0;
    size_t plen = strlen(prefix);
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char job[32], name[512], state[32];
        if (sscanf(line, "%31[^|]|%511[^|]|%31s", job, name, state) != 3)
            continue;
        if (strncmp(name, prefix, plen) != 0 || name[plen] != ':')
            continue;
        char ohost[256];
        long pid;
        unsigned long long start, actor;
        if (sscanf(name + plen + 1, "%255[^:]:%ld:%llu:%llu", ohost, &pid, &start, &actor) != 4)
            continue;
        found++;
        if (strcmp(ohost, host) != 0) {
            printf("job %s %s %s: owner on host %s, not checked here (run tether reap there)\n",
                   job, name, state, ohost);
            continue;
        }
        if (start_time(pid) == start) {
            printf("job %s %s %s: owner pid %ld is running\n", job, name, state, pid);
            continue;
        }
        orphans++;
        if (dry) {
            printf("job %s %s %s: owner pid %ld is gone: would cancel\n", job, name, state, pid);
            continue;
        }
        char step[48], msg[1024];
        snprintf(step, sizeof step, "%s.0", job);
        char *kill_step[] = {"scancel", "--signal=KILL", step, NULL};
        char *cancel_job[] = {"scancel", job, NULL};
        int a = run(kill_step, msg, sizeof msg);
        int b = run(cancel_job, msg, sizeof msg);
        if (a != 0 && b != 0) {
            printf("job %s %s %s: owner pid %ld is gone: scancel failed: %s\n", job, name, state,
                   pid, msg);
            status = EXIT_FAIL;
        } else {
            printf("job %s %s %s: owner pid %ld is gone: cancelled\n", job, name, state, pid);
        }
    }
    printf("%d job(s) of prefix '%s', %d orphaned%s\n", found, prefix, orphans,
           dry && orphans ? " (dry run: none cancelled)" : "");
    return status;
}
