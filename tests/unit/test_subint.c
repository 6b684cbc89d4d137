/* tests/unit/test_subint.c - the subint backend's Python side, through the
 * public API: values crossing as MessagePack, exception text in the
 * outcome, the injected tether.Cancelled, calls by function name, spawning
 * while a sibling spins, how an interpreter with leftover threads is
 * ended (or not), and that the actor modules' compiled code, cached per
 * process, never shares a module nor outlives an edit of its file. Actors:
 * tests/unit/py_actors.py, and files written at run time.
 *
 * Each test runs in its own process (CK_FORK), so each initialises Python
 * afresh; the test runner itself never does. */
#define _GNU_SOURCE /* sched_setaffinity, sched_getcpu, pthread_setattr_default_np */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tether/tether.h>

#include "live_tasks.h"

#define PY_ACTORS TOP_SRCDIR "/tests/unit/py_actors.py"
#define SEC TETHER_NS_PER_SEC

static struct tether_config *cfg;
static tether_supervisor *sup;

static void setup(void)
{
    static const char yaml[] =
        "backend: subint\n"
        "timeouts: { spawn: 2.0, soft_cancel: 0.5, hard_kill: 0.5 }\n"
        "backends:\n"
        "  subint: { path: " TOP_BUILDDIR "/backends/subint/.libs/subint.so }\n";
    struct tether_error err;
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "test.yaml", "/", &cfg, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(tether_supervisor_open(cfg, NULL, &sup, &err) == 0, "%s", err.msg);
}

static void teardown(void)
{
    if (sup)
        tether_supervisor_close(sup, NULL);
    sup = NULL;
    tether_config_free(cfg);
    cfg = NULL;
}

static tether_handle *spawn(const char *fn)
{
    char target[512];
    snprintf(target, sizeof target, "%s:%s", PY_ACTORS, fn);
    tether_handle *h;
    struct tether_error err;
    ck_assert_msg(tether_spawn(sup, target, 0, &h, &err) == 0, "%s", err.msg);
    return h;
}

static struct tether_outcome wait_outcome(tether_handle *h)
{
    struct tether_outcome o;
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    return o;
}

/* Receive one message as a NUL-terminated string (caller frees). */
static char *recv_text(tether_handle *h)
{
    void *buf;
    size_t len;
    ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + 3 * SEC), 0);
    char *s = malloc(len + 1);
    memcpy(s, buf, len);
    s[len] = '\0';
    free(buf);
    return s;
}

START_TEST(values_round_trip_through_send_and_recv)
{
    tether_handle *h = spawn("echo");
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 8);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_int64(&pk, -5);
    msgpack_pack_uint64(&pk, UINT64_C(9223372036854775809));
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_str_with_body(&pk, "h\xc3\xa9llo", 6);
    msgpack_pack_bin_with_body(&pk, "\x00\xff", 2);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_int(&pk, 2);
    ck_assert_int_eq(tether_send(h, sb.data, sb.size, tether_now_ns() + SEC), 0);

    void *buf;
    size_t len;
    ck_assert_int_eq(tether_recv(h, &buf, &len, tether_now_ns() + 3 * SEC), 0);
    ck_assert_uint_eq(len, sb.size); /* the same value, packed the same way */
    ck_assert(memcmp(buf, sb.data, len) == 0);
    free(buf);
    char *repr = recv_text(h);
    ck_assert_str_eq(repr, "[None, True, -5, 9223372036854775809, 1.5, 'h\xc3\xa9llo', "
                           "b'\\x00\\xff', {'k': [1, 2]}]");
    free(repr);
    msgpack_sbuffer_destroy(&sb);
    tether_cancel(h);
    ck_assert_int_eq(wait_outcome(h).kind, TETHER_OUTCOME_CANCELLED);
    tether_handle_release(h);
}
END_TEST

START_TEST(unsendable_objects_raise_type_error_in_the_actor)
{
    tether_handle *h = spawn("unsendable");
    const char *types[] = {"function", "object", "set"};
    for (int i = 0; i < 3; i++) {
        char *t = recv_text(h);
        char want[64];
        snprintf(want, sizeof want, "cannot send an object of type '%s'", types[i]);
        ck_assert_msg(strstr(t, want), "got: %s", t);
        free(t);
    }
    tether_cancel(h);
    ck_assert_int_eq(wait_outcome(h).kind, TETHER_OUTCOME_CANCELLED);
    tether_handle_release(h);
}
END_TEST

START_TEST(exception_type_message_and_traceback_reach_the_outcome)
{
    tether_handle *h = spawn("raises");
    struct tether_outcome o = wait_outcome(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "failed");
    ck_assert_ptr_nonnull(o.message);
    ck_assert_msg(strncmp(o.message, "ValueError: boom 42\n", 20) == 0, "%s", o.message);
    ck_assert_msg(strstr(o.message, "Traceback (most recent call last)"), "%s", o.message);
    ck_assert_msg(strstr(o.message, "in _deeper"), "%s", o.message);
    ck_assert_msg(strstr(tether_supervisor_failure(sup), "boom 42"), "%s",
                  tether_supervisor_failure(sup));
    tether_handle_release(h);
}
END_TEST

START_TEST(returned_int_is_the_exit_status)
{
    tether_handle *h = spawn("exits_7");
    struct tether_outcome o = wait_outcome(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "exited");
    ck_assert_int_eq(o.code, 7);
    tether_handle_release(h);
}
END_TEST

START_TEST(injected_cancel_stops_a_busy_python_loop_within_the_soft_bound)
{
    tether_handle *h = spawn("busy");
    int64_t t0 = tether_now_ns();
    struct tether_outcome o;
    tether_cancel(h);
    ck_assert_int_eq(tether_wait(h, tether_now_ns() + 3 * SEC, &o), 0);
    ck_assert_str_eq(tether_outcome_name(o.kind), "cancelled");
    ck_assert_int_eq(o.hard_kill_ns, 0); /* no hard kill needed: within soft_cancel */
    ck_assert_int_lt(tether_now_ns() - t0, 500 * 1000000LL);
    tether_handle_release(h);
}
END_TEST

START_TEST(spawn_succeeds_while_a_sibling_spins)
{
    /* 3.11: the spinner never hears GIL requests from other interpreters;
     * the backend's monitor forwards them (gil311.c), so the new actor
     * starts within the spawn timeout (2 s here) */
    tether_handle *busy = spawn("busy");
    tether_handle *h = spawn("exits_7"); /* fails the test past the spawn timeout */
    ck_assert_int_eq(wait_outcome(h).code, 7);
    tether_cancel(busy);
    ck_assert_int_eq(wait_outcome(busy).kind, TETHER_OUTCOME_CANCELLED);
    tether_handle_release(h);
    tether_handle_release(busy);
}
END_TEST

/* The starvation case on its own (CK_RUN_CASE=starvation), for `make
 * stress`: TETHER_STARVATION_ROUNDS rounds (default 3) of two spinning
 * siblings and a spawn, a call and a message beside them. Each must finish
 * within its bound (spawn timeout, call and recv deadlines): a starved GIL
 * request fails it. */
START_TEST(spawns_calls_and_messages_beside_two_spinners)
{
    const char *env = getenv("TETHER_STARVATION_ROUNDS");
    int rounds = env && atoi(env) > 0 ? atoi(env) : 3;
    for (int i = 0; i < rounds; i++) {
        tether_handle *b1 = spawn("busy"), *b2 = spawn("busy");
        tether_handle *h = spawn("echo");
        ck_assert_int_eq(tether_send(h, "\x07", 1, tether_now_ns() + 2 * SEC), 0);
        char *t = recv_text(h); /* the value, then its repr */
        free(t);
        t = recv_text(h);
        ck_assert_str_eq(t, "7");
        free(t);
        struct tether_value a[2] = {{.type = 'i', .v.i = 20}, {.type = 'i', .v.i = 22}}, ret;
        struct tether_error err;
        ck_assert_int_eq(tether_call(h, "add", "ii:i", a, 2, &ret, tether_now_ns() + 2 * SEC, &err),
                         0);
        ck_assert_int_eq(ret.v.i, 42);
        tether_cancel(h);
        tether_cancel(b1);
        tether_cancel(b2);
        ck_assert_int_eq(wait_outcome(h).kind, TETHER_OUTCOME_CANCELLED);
        ck_assert_int_eq(wait_outcome(b1).kind, TETHER_OUTCOME_CANCELLED);
        ck_assert_int_eq(wait_outcome(b2).kind, TETHER_OUTCOME_CANCELLED);
        tether_handle_release(h);
        tether_handle_release(b1);
        tether_handle_release(b2);
    }
}
END_TEST

START_TEST(syntax_error_fails_the_spawn_with_its_text)
{
    tether_handle *h = NULL;
    struct tether_error err;
    int rc = tether_spawn(sup, TOP_SRCDIR "/tests/unit/py_syntax_error.py:actor", 0, &h, &err);
    ck_assert_int_eq(rc, TETHER_ESPAWN);
    ck_assert_msg(strstr(err.msg, "SyntaxError"), "%s", err.msg);
    tether_handle_release(h);
    rc = tether_spawn(sup, "no_such_package.mod:actor", 0, &h, &err);
    ck_assert_int_eq(rc, TETHER_ESPAWN);
    ck_assert_msg(strstr(err.msg, "No module named 'no_such_package'"), "%s", err.msg);
    tether_handle_release(h);
}
END_TEST

static int call(tether_handle *h, const char *fn, const char *sig, const struct tether_value *a,
                size_t n, struct tether_value *ret, struct tether_error *err)
{
    return tether_call(h, fn, sig, a, n, ret, tether_now_ns() + 3 * SEC, err);
}

START_TEST(calls_by_name_check_arity_and_return_type)
{
    tether_handle *h = spawn("echo"); /* py_actors.py declares no table */
    struct tether_value a[2] = {{.type = 'i', .v.i = 2}, {.type = 'i', .v.i = 3}}, ret;
    struct tether_error err;
    /* echo first wants one message */
    ck_assert_int_eq(tether_send(h, "\xc0", 1, tether_now_ns() + SEC), 0);
    free(recv_text(h));
    free(recv_text(h));
    ck_assert_int_eq(call(h, "add", "ii:i", a, 2, &ret, &err), 0);
    ck_assert_int_eq(ret.v.i, 5);
    struct tether_value s = {.type = 's', .v.s = "x"};
    ck_assert_int_eq(call(h, "greet", "s:s", &s, 1, &ret, &err), 0);
    ck_assert_str_eq(ret.v.s, "hello x");
    free((char *)ret.v.s);
    ck_assert_int_eq(call(h, "add", "i:i", a, 1, &ret, &err), TETHER_EBADCALL);
    ck_assert_msg(strstr(err.msg, "the function takes 2"), "%s", err.msg);
    ck_assert_int_eq(call(h, "wrong_type", ":i", NULL, 0, &ret, &err), TETHER_EBADCALL);
    ck_assert_msg(strstr(err.msg, "returned str"), "%s", err.msg);
    ck_assert_int_eq(call(h, "_deeper", "i:v", a, 1, &ret, &err), TETHER_EBADCALL);
    ck_assert_msg(strstr(err.msg, "no function '_deeper'"), "%s", err.msg);
    ck_assert_int_eq(call(h, "add", "ss:s", (struct tether_value[]){s, s}, 2, &ret, &err), 0);
    ck_assert_str_eq(ret.v.s, "xx");
    free((char *)ret.v.s);
    tether_cancel(h);
    ck_assert_int_eq(wait_outcome(h).kind, TETHER_OUTCOME_CANCELLED);
    tether_handle_release(h);
}
END_TEST

START_TEST(interpreter_ends_after_a_short_leftover_thread)
{
    tether_handle *h = spawn("short_thread");
    struct tether_outcome o = wait_outcome(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "exited");
    ck_assert_uint_eq(tether_supervisor_abandoned(sup), 0);
    tether_handle_release(h);
}
END_TEST

START_TEST(endless_daemon_thread_leaves_the_interpreter_alive_without_abort)
{
    /* Py_EndInterpreter would abort the process here */
    tether_handle *h = spawn("endless_daemon_thread");
    struct tether_outcome o = wait_outcome(h);
    ck_assert_str_eq(tether_outcome_name(o.kind), "exited");
    tether_handle_release(h);
    h = spawn("exits_7"); /* and the process still works */
    ck_assert_int_eq(wait_outcome(h).code, 7);
    tether_handle_release(h);
}
END_TEST

START_TEST(tether_calls_from_other_threads_are_refused)
{
    tether_handle *h = spawn("from_other_thread");
    char *t = recv_text(h);
    ck_assert_msg(strstr(t, "only be called from the actor's own thread"), "%s", t);
    free(t);
    tether_cancel(h);
    ck_assert_int_eq(wait_outcome(h).kind, TETHER_OUTCOME_CANCELLED);
    tether_handle_release(h);
}
END_TEST

START_TEST(chained_exceptions_reach_the_outcome)
{
    tether_handle *h = spawn("chained");
    struct tether_outcome o = wait_outcome(h);
    ck_assert_int_eq(o.kind, TETHER_OUTCOME_FAILED);
    /* the summary first, then the chain oldest first, as `traceback` does */
    ck_assert_msg(strncmp(o.message, "ValueError: outer 43\n", 21) == 0, "%s", o.message);
    const char *inner = strstr(o.message, "KeyError: 'inner'");
    const char *during = strstr(o.message, "During handling of the above exception");
    const char *outer = strstr(o.message + 21, "ValueError: outer 43");
    ck_assert_msg(inner && during && outer && inner < during && during < outer, "%s", o.message);
    ck_assert_msg(strstr(o.message, "in chained"), "%s", o.message);
    tether_handle_release(h);
}
END_TEST

START_TEST(outcome_is_out_before_the_interpreter_ends)
{
    /* The actor's interpreter cannot end before the file exists, and the
     * file is made only once the outcome is known: reap must not wait for
     * the end (it used to, and 16 ends were on error.many-fail's path). */
    char dir[] = "/tmp/tether-slow-end-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/go", dir);
    tether_handle *h = spawn("slow_end");
    ck_assert_int_eq(tether_send(h, path, strlen(path), tether_now_ns() + SEC), 0);
    struct tether_outcome o = wait_outcome(h); /* the end would take 10 s */
    ck_assert_int_eq(o.kind, TETHER_OUTCOME_FAILED);
    ck_assert_msg(strstr(o.message, "slow end"), "%s", o.message);
    /* not abandoned after hard_kill for a slow end, as it used to be */
    ck_assert_msg(!strstr(o.message, "abandon"), "%s", o.message);
    ck_assert_uint_eq(tether_supervisor_abandoned(sup), 0);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    tether_handle_release(h);
    tether_supervisor_close(sup, NULL); /* waits for the end (bounded) */
    sup = NULL;
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(exit_fd_is_written_only_once_reap_can_succeed)
{
    /* backend.h: the exit fd polls readable once reap() would succeed. The
     * driver once wrote it a moment before it marked the outcome out; the
     * engine, woken on the same CPU before that store, found reap not yet
     * and fell back to a timer (a cooperative cancel took 2.2 ms instead
     * of 0.2, about half the time). Every thread of this process shares one
     * CPU here, as in that measurement; the events log says `reap-retry`
     * whenever the engine had to retry. */
    teardown();
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
    char dir[] = "/tmp/tether-exitfd-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char yaml[1024], events[64];
    snprintf(events, sizeof events, "%s/events.jsonl", dir);
    snprintf(yaml, sizeof yaml,
             "backend: subint\n"
             "events: %s\n"
             "timeouts: { spawn: 5.0, soft_cancel: 2.0, hard_kill: 0.5 }\n"
             "backends:\n"
             "  subint: { path: " TOP_BUILDDIR "/backends/subint/.libs/subint.so }\n",
             events);
    struct tether_error err;
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "exitfd.yaml", "/", &cfg, &err) == 0,
                  "%s", err.msg);
    ck_assert_msg(tether_supervisor_open(cfg, NULL, &sup, &err) == 0, "%s", err.msg);
    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        tether_handle *h = spawn("cooperative");
        ck_assert_int_eq(tether_cancel(h), 0);
        struct tether_outcome o = wait_outcome(h);
        ck_assert_int_eq(o.kind, TETHER_OUTCOME_CANCELLED);
        tether_handle_release(h);
    }
    tether_supervisor_close(sup, NULL);
    sup = NULL;
    FILE *f = fopen(events, "r");
    ck_assert_ptr_nonnull(f);
    char line[2048];
    int reaped = 0, retried = 0;
    while (fgets(line, sizeof line, f)) {
        reaped += strstr(line, "\"phase\":\"reaped\"") != NULL;
        retried += strstr(line, "\"phase\":\"reap-retry\"") != NULL;
    }
    fclose(f);
    unlink(events);
    rmdir(dir);
    ck_assert_int_eq(reaped, N);
    ck_assert_msg(retried == 0, "%d of %d reaps were retried on the timer", retried, N);
}
END_TEST

START_TEST(driver_threads_take_the_process_default_thread_attributes)
{
    /* as a thread made with no attributes does (bench/tbench's split mode
     * sets a CPU for actors this way; drivers ran on the spawner's CPU) */
    cpu_set_t all;
    ck_assert_int_eq(sched_getaffinity(0, sizeof all, &all), 0);
    if (CPU_COUNT(&all) < 2)
        return; /* nothing to tell apart */
    int last = -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all))
            last = c;
    pthread_attr_t at;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(last, &one);
    ck_assert_int_eq(pthread_attr_init(&at), 0);
    ck_assert_int_eq(pthread_attr_setaffinity_np(&at, sizeof one, &one), 0);
    ck_assert_int_eq(pthread_setattr_default_np(&at), 0);
    pthread_attr_destroy(&at);
    tether_handle *h = spawn("cpus");
    char *said = recv_text(h), want[16];
    snprintf(want, sizeof want, "%d", last);
    ck_assert_str_eq(said, want);
    free(said);
    wait_outcome(h);
    tether_handle_release(h);
}
END_TEST

START_TEST(failure_texts_do_not_import_traceback)
{
    tether_handle *h = spawn("echo");
    ck_assert_int_eq(tether_send(h, "\xc0", 1, tether_now_ns() + SEC), 0);
    free(recv_text(h));
    free(recv_text(h));
    struct tether_value ret;
    struct tether_error err;
    ck_assert_int_eq(call(h, "raise_in_call", ":v", NULL, 0, &ret, &err), TETHER_EBADCALL);
    ck_assert_msg(strstr(err.msg, "LookupError: call failed 44"), "%s", err.msg);
    ck_assert_int_eq(call(h, "traceback_loaded", ":i", NULL, 0, &ret, &err), 0);
    ck_assert_msg(ret.v.i == 0, "a failed call imported the traceback module");
    tether_cancel(h);
    ck_assert_int_eq(wait_outcome(h).kind, TETHER_OUTCOME_CANCELLED);
    tether_handle_release(h);
}
END_TEST

/* The plugin's CPython minor version, from its note ("CPython 3.13.5: ..."). */
static int plugin_minor(void)
{
    struct tether_plugin_info info;
    struct tether_error err;
    ck_assert_msg(tether_plugin_probe(TOP_BUILDDIR "/backends/subint/.libs/subint.so", &info,
                                      &err) == 0, "%s", err.msg);
    int major = 0, minor = 0;
    ck_assert_msg(sscanf(info.note, "CPython %d.%d", &major, &minor) == 2 && major == 3,
                  "note: %s", info.note);
    return minor;
}

static int open_with_own_gil(const char *value, struct tether_error *err)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "backend: subint\n"
             "timeouts: { spawn: 5.0, soft_cancel: 0.5, hard_kill: 0.5 }\n"
             "backends:\n"
             "  subint: { path: " TOP_BUILDDIR "/backends/subint/.libs/subint.so, "
             "options: { own_gil: %s } }\n",
             value);
    struct tether_config *c;
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "own.yaml", "/", &c, err) == 0, "%s",
                  err->msg);
    tether_supervisor *s;
    int rc = tether_supervisor_open(c, NULL, &s, err);
    if (rc == 0) {
        /* an actor runs in this mode, and its exit status comes back */
        tether_handle *h;
        char target[512];
        snprintf(target, sizeof target, "%s:exits_7", PY_ACTORS);
        ck_assert_msg(tether_spawn(s, target, 0, &h, err) == 0, "%s", err->msg);
        struct tether_outcome o;
        ck_assert_int_eq(tether_wait(h, tether_now_ns() + 5 * SEC, &o), 0);
        ck_assert_int_eq(o.kind, TETHER_OUTCOME_EXITED);
        ck_assert_int_eq(o.code, 7);
        tether_handle_release(h);
        tether_supervisor_close(s, NULL);
    }
    tether_config_free(c);
    return rc;
}

START_TEST(own_gil_option_by_python_version)
{
    struct tether_error err;
    ck_assert_int_eq(open_with_own_gil("maybe", &err), TETHER_ECONFIG);
    ck_assert_msg(strstr(err.msg, "own_gil: 'maybe' is not true or false"), "%s", err.msg);
    ck_assert_msg(open_with_own_gil("false", &err) == 0, "%s", err.msg);
    if (plugin_minor() >= 12) {
        ck_assert_msg(open_with_own_gil("true", &err) == 0, "%s", err.msg);
    } else {
        ck_assert_int_eq(open_with_own_gil("true", &err), TETHER_ECONFIG);
        ck_assert_msg(strstr(err.msg, "needs CPython 3.12 or later"), "%s", err.msg);
    }
}
END_TEST


/* ---- the warm pool (options pool: N) ----------------------------------------------------- */

/* Is `tid` a live thread of this process now (not gone, not exiting)? */
static int is_task(long tid)
{
    char name[32];
    snprintf(name, sizeof name, "%ld", tid);
    return live_task(name);
}

/* The live threads of this process (all, or only parked pool drivers:
 * named tether-pool) into tids (at most 64); their count. */
static int tasks(long *tids, int only_parked)
{
    int n = live_tasks(tids, 64, only_parked ? "tether-pool" : NULL);
    ck_assert_int_ge(n, 0);
    return n;
}

/* Wait (at most 10 s, 2 ms naps) until `want` threads (parked ones, or all). */
static int wait_count(int want, int only_parked, long *tids)
{
    int64_t end = tether_now_ns() + 10 * SEC;
    int n;
    while ((n = tasks(tids, only_parked)) != want && tether_now_ns() < end) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return n;
}

/* A pooled actor runs in an interpreter made ahead, on a driver thread
 * parked before its spawn, and finds nothing an earlier actor left in its
 * own interpreter (sys.modules, sys, builtins, its module's globals); close
 * then ends every parked driver. */
START_TEST(pooled_interpreter_is_fresh_and_close_ends_the_pool)
{
    long before[64];
    int base = tasks(before, 0);
    static const char yaml[] =
        "backend: subint\n"
        "timeouts: { spawn: 2.0, soft_cancel: 0.5, hard_kill: 0.5 }\n"
        "backends:\n"
        "  subint: { path: " TOP_BUILDDIR "/backends/subint/.libs/subint.so, options: { pool: 2 } }\n";
    struct tether_error err;
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "test.yaml", "/", &cfg, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(tether_supervisor_open(cfg, NULL, &sup, &err) == 0, "%s", err.msg);
    long tids[2];
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(wait_count(2, 1, before), 2);
        tether_handle *h = spawn("leave_marks");
        char *text = recv_text(h);
        char found[64];
        ck_assert_msg(sscanf(text, "found=%63s tid=%ld", found, &tids[round]) == 2, "%s", text);
        ck_assert_msg(strcmp(found, "-") == 0, "round %d found marks in: %s", round, found);
        ck_assert_msg(before[0] == tids[round] || before[1] == tids[round],
                      "round %d: driver %ld was not parked ahead", round, tids[round]);
        free(text);
        struct tether_outcome o = wait_outcome(h);
        ck_assert_int_eq(o.kind, TETHER_OUTCOME_EXITED);
        tether_handle_release(h);
    }
    ck_assert(tids[0] != tids[1]);
    ck_assert_int_eq(wait_count(2, 1, before), 2);
    ck_assert_int_eq(tether_supervisor_close(sup, NULL), 0);
    sup = NULL;
    ck_assert(!is_task(tids[0]) && !is_task(tids[1]));
    /* the engine, the injector, the refiller and the parked drivers are gone */
    ck_assert_int_eq(wait_count(base, 0, before), base);
}
END_TEST

START_TEST(pool_option_is_checked)
{
    static const char yaml[] =
        "backend: subint\n"
        "backends:\n"
        "  subint: { path: " TOP_BUILDDIR "/backends/subint/.libs/subint.so, options: { pool: lots } }\n";
    struct tether_error err;
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "test.yaml", "/", &cfg, &err) == 0, "%s",
                  err.msg);
    ck_assert_int_eq(tether_supervisor_open(cfg, NULL, &sup, &err), TETHER_ECONFIG);
    ck_assert_msg(strstr(err.msg, "option pool: 'lots'"), "%s", err.msg);
}
END_TEST

/* ---- the actor module's code, compiled once per process ------------------------------------ */

/* The supervisor of these tests: cold (pool 0) or with a warm pool. */
static void open_with_pool(int pool)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "backend: subint\n"
             "timeouts: { spawn: 2.0, soft_cancel: 0.5, hard_kill: 0.5 }\n"
             "backends:\n"
             "  subint: { path: " TOP_BUILDDIR "/backends/subint/.libs/subint.so, "
             "options: { pool: %d } }\n",
             pool);
    struct tether_error err;
    ck_assert_msg(tether_config_parse(yaml, strlen(yaml), "test.yaml", "/", &cfg, &err) == 0, "%s",
                  err.msg);
    ck_assert_msg(tether_supervisor_open(cfg, NULL, &sup, &err) == 0, "%s", err.msg);
}

/* Far in the past, so that no write made now has these times. */
#define T0 ((time_t)1000000000)

/* Write `text` to `path` (in place: the inode stays), then set its mtime
 * to `mtime` (0: leave the time of the write). */
static void write_file(const char *path, const char *text, time_t mtime)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    if (mtime) {
        struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
        ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
    }
}

/* The actor module, version `tag` (a longer tag makes a longer file). Its
 * `bump` says what it found in its module, then waits for a message; `boom`
 * raises from line 6. */
static void write_module(const char *path, const char *tag, time_t mtime)
{
    char text[1024];
    snprintf(text, sizeof text,
             "import sys\n"
             "import tether\n"
             "seen = []\n"
             "\n"
             "def boom(actor):\n"
             "    raise KeyError('%s')\n"
             "\n"
             "def bump(actor):\n"
             "    seen.append(1)\n"
             "    mine = sys.modules[__name__].seen is seen\n"
             "    tether.send_bytes(f'%s seen={len(seen)} mine={mine} file={__file__}'.encode())\n"
             "    tether.recv_bytes(timeout=5)\n",
             tag, tag);
    write_file(path, text, mtime);
}

static tether_handle *spawn_at(const char *path, const char *fn)
{
    char target[512];
    snprintf(target, sizeof target, "%s:%s", path, fn);
    tether_handle *h;
    struct tether_error err;
    ck_assert_msg(tether_spawn(sup, target, 0, &h, &err) == 0, "%s", err.msg);
    return h;
}

/* Two actors of `path` alive at once each run version `tag` in a module of
 * their own: the first one's append to the module global `seen` is not
 * seen by the second. */
static void expect_version(const char *path, const char *tag)
{
    char want[512];
    snprintf(want, sizeof want, "%s seen=1 mine=True file=%s", tag, path);
    tether_handle *h[2];
    for (int i = 0; i < 2; i++) {
        h[i] = spawn_at(path, "bump");
        char *t = recv_text(h[i]);
        ck_assert_msg(strcmp(t, want) == 0, "actor %d of %s: %s", i, tag, t);
        free(t);
    }
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(tether_send(h[i], "x", 1, tether_now_ns() + SEC), 0);
        ck_assert_int_eq(wait_outcome(h[i]).kind, TETHER_OUTCOME_EXITED);
        tether_handle_release(h[i]);
    }
}

/* Every spawn of a target file gets a fresh module, and an edit of the
 * file, whichever of its mtime, size or inode it changes, is what the next
 * spawn runs; tracebacks and syntax errors name the real file. Cold (_i 0)
 * and from a warm pool (_i 1). */
START_TEST(each_spawn_gets_a_fresh_module_and_an_edited_file_runs_its_new_code)
{
    open_with_pool(_i ? 2 : 0);
    char dir[] = "/tmp/tether-codecache-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64], tmp[64];
    snprintf(path, sizeof path, "%s/target.py", dir);
    snprintf(tmp, sizeof tmp, "%s/target.new", dir);

    write_module(path, "v1", T0);
    expect_version(path, "v1");
    tether_handle *h = spawn_at(path, "boom");
    struct tether_outcome o = wait_outcome(h);
    ck_assert_int_eq(o.kind, TETHER_OUTCOME_FAILED);
    char want[256];
    snprintf(want, sizeof want, "File \"%s\", line 6, in boom\n    raise KeyError('v1')", path);
    ck_assert_msg(strstr(o.message, want), "%s", o.message);
    tether_handle_release(h);

    write_module(path, "v2", T0 + 1); /* only the mtime differs */
    expect_version(path, "v2");
    write_module(path, "v3x", T0 + 1); /* only the size */
    expect_version(path, "v3x");
    write_module(tmp, "v4x", T0 + 1); /* only the inode */
    ck_assert_int_eq(rename(tmp, path), 0);
    expect_version(path, "v4x");

    write_file(path, "import tether\ndef bump(:\n", 0);
    struct tether_error err;
    char target[128];
    snprintf(target, sizeof target, "%s:bump", path);
    ck_assert_int_eq(tether_spawn(sup, target, 0, &h, &err), TETHER_ESPAWN);
    ck_assert_msg(strstr(err.msg, "SyntaxError: ") && strstr(err.msg, "(target.py, line 2)"),
                  "%s", err.msg);
    tether_handle_release(h);
    write_module(path, "v5", 0);
    expect_version(path, "v5");

    unlink(path);
    rmdir(dir);
}
END_TEST

/* More target files than the cache keeps (64): each still runs its own
 * code, the first ones (dropped by then) as well as the last. */
START_TEST(more_targets_than_the_cache_holds_each_run_their_own_code)
{
    enum { N = 70 };
    char dir[] = "/tmp/tether-codecache-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(path[i], sizeof path[i], "%s/t%d.py", dir, i);
        char text[64];
        snprintf(text, sizeof text, "def code(actor):\n    return %d\n", i);
        write_file(path[i], text, 0);
    }
    /* all of them, then the first two (dropped from the cache by then) and the last */
    for (int k = 0; k < N + 3; k++) {
        int i = k < N ? k : k == N ? 0 : k == N + 1 ? 1 : N - 1;
        tether_handle *h = spawn_at(path[i], "code");
        struct tether_outcome o = wait_outcome(h);
        ck_assert_int_eq(o.kind, TETHER_OUTCOME_EXITED);
        ck_assert_int_eq(o.code, i);
        tether_handle_release(h);
    }
    for (int i = 0; i < N; i++)
        unlink(path[i]);
    rmdir(dir);
}
END_TEST

/* A target that is not a regular file (a FIFO nobody writes) fails the
 * spawn at once, naming it: reading it would wait for a writer forever.
 * The loader refuses it before reading; codecache.c's open does not wait
 * either (O_NONBLOCK, then S_ISREG), for a file replaced in between. */
START_TEST(a_fifo_target_fails_the_spawn_at_once)
{
    char dir[] = "/tmp/tether-codecache-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64], target[128];
    snprintf(path, sizeof path, "%s/fifo.py", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    snprintf(target, sizeof target, "%s:main", path);
    tether_handle *h = NULL;
    struct tether_error err;
    ck_assert_int_eq(tether_spawn(sup, target, 0, &h, &err), TETHER_ESPAWN);
    /* the refusal, not the spawn timeout of an open that waited */
    ck_assert_msg(strstr(err.msg, "fifo.py") && strstr(err.msg, "no actor module") &&
                      !strstr(err.msg, "timeout"),
                  "%s", err.msg);
    tether_handle_release(h);
    unlink(path);
    rmdir(dir);
}
END_TEST

static Suite *subint_suite(void)
{
    Suite *s = suite_create("subint");
    TCase *tc = tcase_create("python");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, values_round_trip_through_send_and_recv);
    tcase_add_test(tc, unsendable_objects_raise_type_error_in_the_actor);
    tcase_add_test(tc, exception_type_message_and_traceback_reach_the_outcome);
    tcase_add_test(tc, returned_int_is_the_exit_status);
    tcase_add_test(tc, injected_cancel_stops_a_busy_python_loop_within_the_soft_bound);
    tcase_add_test(tc, spawn_succeeds_while_a_sibling_spins);
    tcase_add_test(tc, syntax_error_fails_the_spawn_with_its_text);
    tcase_add_test(tc, calls_by_name_check_arity_and_return_type);
    tcase_add_test(tc, interpreter_ends_after_a_short_leftover_thread);
    tcase_add_test(tc, endless_daemon_thread_leaves_the_interpreter_alive_without_abort);
    tcase_add_test(tc, tether_calls_from_other_threads_are_refused);
    tcase_add_test(tc, chained_exceptions_reach_the_outcome);
    tcase_add_test(tc, failure_texts_do_not_import_traceback);
    tcase_add_test(tc, exit_fd_is_written_only_once_reap_can_succeed);
    tcase_add_test(tc, driver_threads_take_the_process_default_thread_attributes);
    tcase_add_test(tc, outcome_is_out_before_the_interpreter_ends);
    tcase_add_test(tc, own_gil_option_by_python_version);
    tcase_add_test(tc, more_targets_than_the_cache_holds_each_run_their_own_code);
    tcase_add_test(tc, a_fifo_target_fails_the_spawn_at_once);
    suite_add_tcase(s, tc);
    TCase *st = tcase_create("starvation");
    tcase_add_checked_fixture(st, setup, teardown);
    tcase_set_timeout(st, 600);
    tcase_add_test(st, spawns_calls_and_messages_beside_two_spinners);
    suite_add_tcase(s, st);
    TCase *pt = tcase_create("pool");
    tcase_add_checked_fixture(pt, NULL, teardown);
    tcase_set_timeout(pt, 40);
    tcase_add_test(pt, pooled_interpreter_is_fresh_and_close_ends_the_pool);
    tcase_add_test(pt, pool_option_is_checked);
    tcase_add_loop_test(pt, each_spawn_gets_a_fresh_module_and_an_edited_file_runs_its_new_code, 0,
                        2);
    suite_add_tcase(s, pt);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(subint_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
