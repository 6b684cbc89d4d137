/* tests/unit/test_config.c - plugins.yaml: schema, defaults, resolution,
 * environment overrides, and one test per refusal, each pinning the
 * "NAME:LINE:COL: KEY:" prefix of its message. */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tether/tether.h>

#define NAME "t.yaml"
#define CFG_DIR "/etc/tether"
#define ONE_BACKEND "backends:\n  t: { path: t.so }\n"

static struct tether_error err;

static int parse_in(const char *text, const char *dir, struct tether_config **cfg)
{
    memset(&err, 0, sizeof err);
    return tether_config_parse(text, strlen(text), NAME, dir, cfg, &err);
}

/* Parse text that must parse; the caller frees the result. */
static struct tether_config *parse_ok(const char *text)
{
    struct tether_config *cfg = NULL;
    int rc = parse_in(text, CFG_DIR, &cfg);
    ck_assert_msg(rc == 0, "parse failed (%d): %s\n--- text:\n%s", rc, err.msg, text);
    ck_assert_ptr_nonnull(cfg);
    return cfg;
}

/* Parse text that must be refused: TETHER_ECONFIG, nothing returned, and
 * a message starting with `prefix`. */
static void expect_refusal(const char *text, const char *prefix)
{
    struct tether_config *cfg = (struct tether_config *)&err; /* must be reset */
    int rc = parse_in(text, CFG_DIR, &cfg);
    ck_assert_msg(rc == TETHER_ECONFIG, "rc %d (%s) for:\n%s", rc, err.msg, text);
    ck_assert_int_eq(err.code, TETHER_ECONFIG);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strncmp(err.msg, prefix, strlen(prefix)) == 0,
                  "message \"%s\" does not start with \"%s\"", err.msg, prefix);
}

static void clean_env(void)
{
    unsetenv("TETHER_BACKEND");
    unsetenv("TETHER_CONFIG");
}

/* ---- good configurations ----------------------------------------------- */

static const char design_example[] =
    "backend: fork                 # used when the program or CLI names none\n"
    "timeouts:                     # seconds\n"
    "  spawn: 5.0\n"
    "  soft_cancel: 2.0\n"
    "  hard_kill: 1.0\n"
    "events: null\n"
    "backends:\n"
    "  thread: { path: backends/thread/.libs/thread.so }\n"
    "  fork:   { path: backends/fork/.libs/fork.so, options: { mode: fork } }\n"
    "  subint: { path: backends/subint/.libs/subint.so, timeouts: { hard_kill: 0.5 } }\n";

START_TEST(parses_design_example_with_merged_overrides)
{
    struct tether_config *cfg = parse_ok(design_example);
    ck_assert_str_eq(cfg->path, NAME);
    ck_assert_str_eq(cfg->dir, CFG_DIR);
    ck_assert_str_eq(cfg->backend, "fork");
    ck_assert_ptr_null(cfg->events);
    ck_assert_uint_eq(cfg->max_frame, 16777216);
    ck_assert_double_eq(cfg->timeouts.spawn, 5.0);
    ck_assert_double_eq(cfg->timeouts.soft_cancel, 2.0);
    ck_assert_double_eq(cfg->timeouts.hard_kill, 1.0);
    ck_assert_uint_eq(cfg->n_backends, 3);

    const struct tether_backend_config *b = &cfg->backends[0];
    ck_assert_str_eq(b->name, "thread");
    ck_assert_str_eq(b->path, CFG_DIR "/backends/thread/.libs/thread.so");
    ck_assert_int_eq(b->line, 8);
    ck_assert_uint_eq(b->n_options, 0);
    ck_assert_ptr_null(b->options);

    b = &cfg->backends[1];
    ck_assert_str_eq(b->name, "fork");
    ck_assert_int_eq(b->line, 9);
    ck_assert_uint_eq(b->n_options, 1);
    ck_assert_str_eq(b->options[0].key, "mode");
    ck_assert_str_eq(b->options[0].value, "fork");

    b = &cfg->backends[2];
    ck_assert_str_eq(b->name, "subint");
    ck_assert_int_eq(b->line, 10);
    ck_assert_double_eq(b->timeouts.spawn, 5.0);
    ck_assert_double_eq(b->timeouts.soft_cancel, 2.0);
    ck_assert_double_eq(b->timeouts.hard_kill, 0.5);
    tether_config_free(cfg);
}
END_TEST

START_TEST(absent_keys_take_defaults)
{
    struct tether_config *cfg = parse_ok("backends:\n  only: { path: /abs/only.so }\n");
    ck_assert_str_eq(cfg->backend, "only"); /* the single backend is the default */
    ck_assert_double_eq(cfg->timeouts.spawn, 5.0);
    ck_assert_double_eq(cfg->timeouts.soft_cancel, 2.0);
    ck_assert_double_eq(cfg->timeouts.hard_kill, 1.0);
    ck_assert_uint_eq(cfg->max_frame, 16 * 1024 * 1024);
    ck_assert_ptr_null(cfg->events);
    ck_assert_str_eq(cfg->backends[0].path, "/abs/only.so");
    ck_assert_double_eq(cfg->backends[0].timeouts.hard_kill, 1.0);
    ck_assert_int_eq(cfg->backends[0].line, 2);
    tether_config_free(cfg);
}
END_TEST

START_TEST(global_timeouts_merge_wherever_given)
{
    /* timeouts after backends still reach every backend not overriding them */
    struct tether_config *cfg = parse_ok("backends:\n"
                                         "  a: { path: a.so, timeouts: { spawn: 9 } }\n"
                                         "  b: { path: b.so }\n"
                                         "backend: a\n"
                                         "timeouts: { soft_cancel: 0, hard_kill: 3 }\n");
    const struct tether_backend_config *a = tether_config_find(cfg, "a");
    const struct tether_backend_config *b = tether_config_find(cfg, "b");
    ck_assert_double_eq(cfg->timeouts.spawn, 5.0);
    ck_assert_double_eq(a->timeouts.spawn, 9.0);
    ck_assert_double_eq(a->timeouts.soft_cancel, 0.0);
    ck_assert_double_eq(a->timeouts.hard_kill, 3.0);
    ck_assert_double_eq(b->timeouts.spawn, 5.0);
    ck_assert_double_eq(b->timeouts.hard_kill, 3.0);
    tether_config_free(cfg);
}
END_TEST

START_TEST(accepts_plain_integer_and_float_timeouts)
{
    struct tether_config *cfg =
        parse_ok(ONE_BACKEND "timeouts: { spawn: 2, soft_cancel: 0.25, hard_kill: 1e1 }\n");
    ck_assert_double_eq(cfg->timeouts.spawn, 2.0);
    ck_assert_double_eq(cfg->timeouts.soft_cancel, 0.25);
    ck_assert_double_eq(cfg->timeouts.hard_kill, 10.0);
    tether_config_free(cfg);
}
END_TEST

START_TEST(relative_paths_resolve_against_dir)
{
    struct tether_config *cfg = NULL;
    ck_assert_int_eq(parse_in("events: log/events.jsonl\n"
                              "backends:\n"
                              "  rel: { path: b/rel.so }\n"
                              "  abs: { path: /opt/abs.so }\n"
                              "backend: rel\n",
                              "/srv/conf/", &cfg),
                     0);
    ck_assert_str_eq(cfg->events, "/srv/conf/log/events.jsonl");
    ck_assert_str_eq(tether_config_find(cfg, "rel")->path, "/srv/conf/b/rel.so");
    ck_assert_str_eq(tether_config_find(cfg, "abs")->path, "/opt/abs.so");
    tether_config_free(cfg);
}
END_TEST

START_TEST(null_tilde_and_empty_events_mean_no_log)
{
    static const char *const texts[] = {ONE_BACKEND "events: null\n", ONE_BACKEND "events: ~\n",
                                        ONE_BACKEND "events:\n", ONE_BACKEND "events: ''\n"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        struct tether_config *cfg = parse_ok(texts[i]);
        ck_assert_ptr_null(cfg->events);
        tether_config_free(cfg);
    }
}
END_TEST

START_TEST(option_values_are_kept_as_strings)
{
    struct tether_config *cfg =
        parse_ok("backends:\n  t: { path: t.so, options: { n: 3, f: 0.5, b: true, q: 'x y' } }\n");
    const struct tether_backend_config *b = &cfg->backends[0];
    ck_assert_uint_eq(b->n_options, 4);
    ck_assert_str_eq(b->options[0].key, "n");
    ck_assert_str_eq(b->options[0].value, "3");
    ck_assert_str_eq(b->options[1].value, "0.5");
    ck_assert_str_eq(b->options[2].value, "true");
    ck_assert_str_eq(b->options[3].value, "x y");
    tether_config_free(cfg);
}
END_TEST

START_TEST(max_frame_bounds_are_inclusive)
{
    struct tether_config *cfg = parse_ok(ONE_BACKEND "max_frame: 64\n");
    ck_assert_uint_eq(cfg->max_frame, 64);
    tether_config_free(cfg);
    cfg = parse_ok(ONE_BACKEND "max_frame: 1073741824\n");
    ck_assert_uint_eq(cfg->max_frame, 1073741824);
    tether_config_free(cfg);
}
END_TEST

START_TEST(find_returns_entry_or_null)
{
    struct tether_config *cfg = parse_ok(design_example);
    ck_assert_ptr_eq(tether_config_find(cfg, "fork"), &cfg->backends[1]);
    ck_assert_ptr_null(tether_config_find(cfg, "nope"));
    ck_assert_ptr_null(tether_config_find(cfg, NULL));
    ck_assert_ptr_null(tether_config_find(NULL, "fork"));
    tether_config_free(cfg);
    tether_config_free(NULL);
}
END_TEST

/* ---- refusals ------------------------------------------------------------ */

START_TEST(unknown_top_level_key_names_key_and_position)
{
    expect_refusal(ONE_BACKEND "colour: blue\n", NAME ":3:1: colour: unknown key");
}
END_TEST

START_TEST(unknown_backend_key_names_dotted_path)
{
    expect_refusal("backends:\n  fork: { path: f.so, colour: 1 }\n",
                   NAME ":2:23: backends.fork.colour: unknown key");
}
END_TEST

START_TEST(unknown_timeout_key_names_dotted_path)
{
    expect_refusal(ONE_BACKEND "timeouts:\n  spwan: 1\n", NAME ":4:3: timeouts.spwan: unknown key");
}
END_TEST

START_TEST(timeouts_not_a_mapping_is_wrong_type)
{
    expect_refusal(ONE_BACKEND "timeouts: 5\n", NAME ":3:11: timeouts: expected a mapping");
}
END_TEST

START_TEST(quoted_number_is_refused)
{
    expect_refusal(ONE_BACKEND "timeouts:\n  soft_cancel: '2.0'\n",
                   NAME ":4:16: timeouts.soft_cancel: expected a number");
    expect_refusal(ONE_BACKEND "timeouts:\n  spawn: \"2\"\n",
                   NAME ":4:10: timeouts.spawn: expected a number");
}
END_TEST

START_TEST(strtod_only_spellings_are_not_numbers)
{
    static const char *const bad[] = {"0x10", "inf", "nan", "infinity", "1_000", "1e", "",
                                      "~",    "2s",  "--1", ".",        "!!float 1"};
    char text[128];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(text, sizeof text, ONE_BACKEND "timeouts:\n  spawn: %s\n", bad[i]);
        expect_refusal(text, NAME ":4:");
        ck_assert_msg(strstr(err.msg, ": timeouts.spawn: expected a number"), "%s: %s", bad[i],
                      err.msg);
    }
}
END_TEST

START_TEST(negative_timeout_names_key_and_line)
{
    expect_refusal(ONE_BACKEND "timeouts:\n  hard_kill: -1\n",
                   NAME ":4:14: timeouts.hard_kill: must be a finite number >= 0");
}
END_TEST

START_TEST(zero_spawn_timeout_is_refused)
{
    expect_refusal(ONE_BACKEND "timeouts:\n  spawn: 0\n",
                   NAME ":4:10: timeouts.spawn: must be > 0 (a spawn needs time to become ready)");
}
END_TEST

START_TEST(nan_and_infinite_timeouts_are_refused)
{
    static const char *const bad[] = {".nan", ".NaN", ".inf", "+.inf", "-.Inf", "1e999", "-0.5"};
    char text[128];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(text, sizeof text, ONE_BACKEND "timeouts:\n  soft_cancel: %s\n", bad[i]);
        expect_refusal(text, NAME ":4:16: timeouts.soft_cancel: must be a finite number >= 0");
    }
}
END_TEST

START_TEST(backend_timeout_override_is_checked_with_its_path)
{
    expect_refusal("backends:\n  subint: { path: s.so, timeouts: { hard_kill: -0.5 } }\n",
                   NAME ":2:48: backends.subint.timeouts.hard_kill: must be a finite number >= 0");
}
END_TEST

START_TEST(path_must_be_a_string)
{
    expect_refusal("backends:\n  t: { path: [a] }\n", NAME ":2:14: backends.t.path: expected a string");
    expect_refusal("backends:\n  t: { path: ~ }\n", NAME ":2:14: backends.t.path: expected a string");
}
END_TEST

START_TEST(options_must_be_a_mapping_of_scalars)
{
    expect_refusal("backends:\n  fork: { path: f.so, options: [fork] }\n",
                   NAME ":2:32: backends.fork.options: expected a mapping");
    expect_refusal("backends:\n  fork: { path: f.so, options: { mode: [a] } }\n",
                   NAME ":2:40: backends.fork.options.mode: expected a scalar");
}
END_TEST

START_TEST(backend_entry_must_be_a_mapping)
{
    expect_refusal("backends:\n  t: t.so\n", NAME ":2:6: backends.t: expected a mapping");
}
END_TEST

START_TEST(backend_without_path_is_refused)
{
    expect_refusal("backends:\n  t: { options: { a: b } }\n", NAME ":2:6: backends.t.path: missing");
}
END_TEST

START_TEST(missing_backends_is_refused)
{
    expect_refusal("timeouts: { spawn: 1 }\n", NAME ":1:1: backends: missing");
}
END_TEST

START_TEST(empty_backends_is_refused)
{
    expect_refusal("backends: {}\n", NAME ":1:11: backends: must name at least one backend");
    expect_refusal("backends:\n", NAME ":1:10: backends: expected a mapping");
}
END_TEST

START_TEST(max_frame_out_of_range_or_not_integer_is_refused)
{
    expect_refusal(ONE_BACKEND "max_frame: 0\n", NAME ":3:12: max_frame: must be between 64 and");
    expect_refusal(ONE_BACKEND "max_frame: 63\n", NAME ":3:12: max_frame: must be between 64 and");
    expect_refusal(ONE_BACKEND "max_frame: -64\n", NAME ":3:12: max_frame: must be between 64 and");
    expect_refusal(ONE_BACKEND "max_frame: 1073741825\n", NAME ":3:12: max_frame: must be between");
    expect_refusal(ONE_BACKEND "max_frame: 99999999999999999999999\n",
                   NAME ":3:12: max_frame: must be between");
    expect_refusal(ONE_BACKEND "max_frame: 1.5\n", NAME ":3:12: max_frame: expected an integer");
    expect_refusal(ONE_BACKEND "max_frame: '4096'\n", NAME ":3:12: max_frame: expected an integer");
    expect_refusal(ONE_BACKEND "max_frame: 0x1000\n", NAME ":3:12: max_frame: expected an integer");
}
END_TEST

START_TEST(unknown_default_backend_is_refused)
{
    expect_refusal("backend: nope\n" ONE_BACKEND,
                   NAME ":1:10: backend: no backend named 'nope' in backends");
}
END_TEST

START_TEST(missing_default_backend_with_several_backends_is_refused)
{
    expect_refusal("backends:\n  a: { path: a.so }\n  b: { path: b.so }\n",
                   NAME ":1:1: backend: missing default backend");
}
END_TEST

START_TEST(duplicate_key_is_refused)
{
    expect_refusal(ONE_BACKEND "timeouts:\n  spawn: 1\n  spawn: 2\n",
                   NAME ":5:3: timeouts.spawn: duplicate key");
    expect_refusal("backends:\n  t: { path: a.so }\n  t: { path: b.so }\n",
                   NAME ":3:3: backends.t: duplicate key");
    expect_refusal(ONE_BACKEND "backends:\n  u: { path: u.so }\n", NAME ":3:1: backends: duplicate key");
}
END_TEST

START_TEST(empty_file_is_refused)
{
    static const char *const texts[] = {"", "\n\n", "# only a comment\n", "---\n"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        expect_refusal(texts[i], NAME ":1:1: empty configuration");
        ck_assert_str_eq(err.msg, NAME ":1:1: empty configuration");
    }
}
END_TEST

START_TEST(top_level_must_be_a_mapping)
{
    expect_refusal("- a\n- b\n", NAME ":1:1: top level: expected a mapping");
    expect_refusal("just some words\n", NAME ":1:1: top level: expected a mapping");
}
END_TEST

START_TEST(refuses_alias_bomb)
{
    /* billion laughs: refused at the first anchor, nothing expanded */
    expect_refusal("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                   "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                   "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                   "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                   "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                   "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n" ONE_BACKEND,
                   NAME ":1:4: a: aliases and anchors are not allowed");
}
END_TEST

START_TEST(refuses_alias_and_unused_anchor)
{
    expect_refusal("backends:\n  t: *x\n", NAME ":2:6: backends.t: aliases and anchors are not allowed");
    expect_refusal("backend: &b t\n" ONE_BACKEND,
                   NAME ":1:10: backend: aliases and anchors are not allowed");
}
END_TEST

START_TEST(not_yaml_reports_parser_problem_and_position)
{
    expect_refusal(ONE_BACKEND "key: value: other\n",
                   NAME ":3:11: syntax error: mapping values are not allowed in this context");
    expect_refusal("backends: [unclosed\n", NAME ":2:1: syntax error: did not find expected");
    expect_refusal("\x01\x02\x03", NAME ":1:1: syntax error: control characters are not allowed");
    expect_refusal("a:\n\tb: 1\n", NAME ":2:1: syntax error: found character that cannot start");
}
END_TEST

START_TEST(more_than_one_document_is_refused)
{
    expect_refusal(ONE_BACKEND "---\n" ONE_BACKEND, NAME ":3:1: top level: more than one document");
}
END_TEST

START_TEST(nul_byte_in_string_is_refused)
{
    expect_refusal("backends:\n  t: { path: \"a\\0b\" }\n",
                   NAME ":2:14: backends.t.path: must not contain a NUL byte");
}
END_TEST

START_TEST(deep_nesting_is_refused)
{
    char text[400] = "x: ";
    memset(text + 3, '[', 100);
    strcat(text, "1\n");
    expect_refusal(text, NAME ":1:");
    ck_assert_ptr_nonnull(strstr(err.msg, "nested too deeply"));
}
END_TEST

/* ---- environment ------------------------------------------------------- */

START_TEST(tether_backend_env_overrides_default)
{
    setenv("TETHER_BACKEND", "subint", 1);
    struct tether_config *cfg = parse_ok(design_example);
    ck_assert_str_eq(cfg->backend, "subint");
    tether_config_free(cfg);
}
END_TEST

START_TEST(tether_backend_env_settles_missing_default)
{
    setenv("TETHER_BACKEND", "b", 1);
    struct tether_config *cfg = parse_ok("backends:\n  a: { path: a.so }\n  b: { path: b.so }\n");
    ck_assert_str_eq(cfg->backend, "b");
    tether_config_free(cfg);
}
END_TEST

START_TEST(tether_backend_env_must_name_a_backend)
{
    setenv("TETHER_BACKEND", "nope", 1);
    expect_refusal(design_example, NAME ":8:3: backend: no backend named 'nope' in backends");
    ck_assert_ptr_nonnull(strstr(err.msg, "TETHER_BACKEND"));
}
END_TEST

START_TEST(empty_tether_backend_env_is_ignored)
{
    setenv("TETHER_BACKEND", "", 1);
    struct tether_config *cfg = parse_ok(design_example);
    ck_assert_str_eq(cfg->backend, "fork");
    tether_config_free(cfg);
}
END_TEST

/* ---- files ------------------------------------------------------------------ */

static char tmpdir[PATH_MAX];
static char temp_path[PATH_MAX + 32]; /* the last file write_temp made */

static void make_tmpdir(void)
{
    clean_env();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tether_test_config.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/plugins.yaml", tmpdir);
    unlink(path);
    if (temp_path[0])
        unlink(temp_path);
    temp_path[0] = '\0';
    rmdir(tmpdir);
    clean_env();
}

/* Write `text` to a new file in tmpdir (removed by the fixture); returns
 * its path. */
static const char *write_temp(const char *text)
{
    snprintf(temp_path, sizeof temp_path, "%s/cfg.XXXXXX", tmpdir);
    int fd = mkstemp(temp_path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return temp_path;
}

static void check_loaded(struct tether_config *cfg, const char *name)
{
    char real[PATH_MAX], want[PATH_MAX + 16];
    ck_assert_ptr_nonnull(realpath(tmpdir, real));
    ck_assert_str_eq(cfg->path, name);
    ck_assert_str_eq(cfg->dir, real);
    snprintf(want, sizeof want, "%s/lib/t.so", real);
    ck_assert_str_eq(cfg->backends[0].path, want);
}

START_TEST(load_reads_file_and_resolves_against_its_folder)
{
    const char *path = write_temp("backends:\n  t: { path: lib/t.so }\n");
    struct tether_config *cfg = NULL;
    int rc = tether_config_load(path, &cfg, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    check_loaded(cfg, path);
    tether_config_free(cfg);
}
END_TEST

START_TEST(load_errors_name_the_file)
{
    const char *path = write_temp("backends:\n  t: { path: lib/t.so, x: 1 }\n");
    struct tether_config *cfg = NULL;
    char want[PATH_MAX + 64];
    ck_assert_int_eq(tether_config_load(path, &cfg, &err), TETHER_ECONFIG);
    ck_assert_ptr_null(cfg);
    snprintf(want, sizeof want, "%s:2:24: backends.t.x: unknown key", path);
    ck_assert_str_eq(err.msg, want);
}
END_TEST

START_TEST(load_uses_tether_config_env)
{
    const char *path = write_temp("backends:\n  t: { path: lib/t.so }\n");
    struct tether_config *cfg = NULL;
    setenv("TETHER_CONFIG", path, 1);
    int rc = tether_config_load(NULL, &cfg, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    check_loaded(cfg, path);
    tether_config_free(cfg);
}
END_TEST

START_TEST(load_defaults_to_plugins_yaml_in_current_folder)
{
    char cwd[PATH_MAX], path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/plugins.yaml", tmpdir);
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs("backends:\n  t: { path: lib/t.so }\n", fp);
    fclose(fp);
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    ck_assert_int_eq(chdir(tmpdir), 0);

    struct tether_config *cfg = NULL;
    int rc = tether_config_load(NULL, &cfg, &err);
    ck_assert_int_eq(chdir(cwd), 0); /* CK_FORK=no runs the next test here */
    ck_assert_msg(rc == 0, "%s", err.msg);
    check_loaded(cfg, "plugins.yaml");
    tether_config_free(cfg);
}
END_TEST

START_TEST(load_missing_file_names_the_file)
{
    struct tether_config *cfg = (struct tether_config *)&err;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/absent.yaml", tmpdir);
    ck_assert_int_eq(tether_config_load(path, &cfg, &err), TETHER_ECONFIG);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strncmp(err.msg, path, strlen(path)) == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(strstr(err.msg, strerror(ENOENT)));
}
END_TEST

START_TEST(load_missing_env_file_says_it_came_from_tether_config)
{
    struct tether_config *cfg = NULL;
    setenv("TETHER_CONFIG", "/nonexistent/tether/plugins.yaml", 1);
    ck_assert_int_eq(tether_config_load(NULL, &cfg, &err), TETHER_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/tether/plugins.yaml"));
    ck_assert_ptr_nonnull(strstr(err.msg, "TETHER_CONFIG"));
}
END_TEST

START_TEST(load_folder_is_refused)
{
    struct tether_config *cfg = NULL;
    ck_assert_int_eq(tether_config_load(tmpdir, &cfg, &err), TETHER_ECONFIG);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(strstr(err.msg, strerror(EISDIR)));
}
END_TEST

#ifdef TOP_SRCDIR
START_TEST(in_tree_plugins_yaml_loads)
{
    struct tether_config *cfg = NULL;
    char real[PATH_MAX], want[PATH_MAX + 64];
    int rc = tether_config_load(TOP_SRCDIR "/plugins.yaml", &cfg, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    ck_assert_ptr_nonnull(realpath(TOP_SRCDIR, real));
    ck_assert_str_eq(cfg->dir, real);
    const struct tether_backend_config *b = tether_config_find(cfg, cfg->backend);
    ck_assert_ptr_nonnull(b);
    snprintf(want, sizeof want, "%s/backends/%s/.libs/%s.so", real, b->name, b->name);
    ck_assert_str_eq(b->path, want);
    tether_config_free(cfg);
}
END_TEST
#endif

/* ---- runner ------------------------------------------------------------- */

static TCase *tcase(const char *name, void (*setup)(void), void (*teardown)(void))
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 10);
    /* the fixture also runs under CK_FORK=no, where env changes would leak */
    tcase_add_checked_fixture(tc, setup, teardown);
    return tc;
}

/* ---- supervision (issue 18) ---- */

START_TEST(supervision_defaults_are_otps)
{
    struct tether_config *cfg = parse_ok(ONE_BACKEND);
    const struct tether_supervision *sv = &cfg->backends[0].supervision;
    ck_assert_int_eq(sv->strategy, TETHER_ONE_FOR_ALL);
    ck_assert_uint_eq(sv->max_restarts, 1);
    ck_assert(sv->period == 5);
    ck_assert_int_eq(sv->restart, TETHER_RESTART_TEMPORARY);
    ck_assert(sv->backoff == 0);
    tether_config_free(cfg);
}
END_TEST

START_TEST(supervision_merges_per_backend_overrides)
{
    struct tether_config *cfg = parse_ok(
        "backend: a\n"
        "supervision: { strategy: rest_for_one, max_restarts: 3, period: 10, restart: transient,\n"
        "               backoff: 0.5, backoff_max: 8 }\n"
        "backends:\n"
        "  a: { path: a.so }\n"
        "  b: { path: b.so, supervision: { strategy: one_for_one, restart: permanent } }\n");
    const struct tether_supervision *a = &tether_config_find(cfg, "a")->supervision;
    const struct tether_supervision *b = &tether_config_find(cfg, "b")->supervision;
    ck_assert_int_eq(a->strategy, TETHER_REST_FOR_ONE);
    ck_assert_int_eq(a->restart, TETHER_RESTART_TRANSIENT);
    ck_assert_uint_eq(a->max_restarts, 3);
    ck_assert(a->period == 10 && a->backoff == 0.5 && a->backoff_max == 8);
    ck_assert_int_eq(b->strategy, TETHER_ONE_FOR_ONE);
    ck_assert_int_eq(b->restart, TETHER_RESTART_PERMANENT);
    ck_assert_uint_eq(b->max_restarts, 3);
    ck_assert(b->period == 10 && b->backoff == 0.5);
    tether_config_free(cfg);
}
END_TEST

START_TEST(supervision_bad_values_name_key_and_position)
{
    expect_refusal(ONE_BACKEND "supervision:\n  strategy: one_for_some\n",
                   NAME ":4:13: supervision.strategy: unknown value 'one_for_some' (one of: "
                        "one_for_all, one_for_one, rest_for_one)");
    expect_refusal(ONE_BACKEND "supervision:\n  restart: always\n",
                   NAME ":4:12: supervision.restart: unknown value 'always' (one of: temporary, "
                        "transient, permanent)");
    expect_refusal(ONE_BACKEND "supervision:\n  max_restarts: -1\n",
                   NAME ":4:17: supervision.max_restarts: must be a whole number >= 0");
    expect_refusal(ONE_BACKEND "supervision:\n  max_restarts: 1.5\n",
                   NAME ":4:17: supervision.max_restarts: must be a whole number >= 0");
    expect_refusal(ONE_BACKEND "supervision:\n  period: -5\n",
                   NAME ":4:11: supervision.period: must be a finite number >= 0");
    expect_refusal(ONE_BACKEND "supervision:\n  backoff: .inf\n",
                   NAME ":4:12: supervision.backoff: must be a finite number >= 0");
    expect_refusal(ONE_BACKEND "supervision:\n  backoff_max: .nan\n",
                   NAME ":4:16: supervision.backoff_max: must be a finite number >= 0");
    expect_refusal(ONE_BACKEND "supervision:\n  intensity: 3\n",
                   NAME ":4:3: supervision.intensity: unknown key");
    expect_refusal(ONE_BACKEND "supervision: 3\n",
                   NAME ":3:14: supervision: expected a mapping");
}
END_TEST

START_TEST(supervision_period_zero_with_restarts_is_refused)
{
    expect_refusal(ONE_BACKEND "supervision:\n  period: 0\n",
                   NAME ":4:11: supervision.period: 0 with max_restarts 1");
    /* fine when nothing may restart */
    struct tether_config *cfg = parse_ok(ONE_BACKEND "supervision: { period: 0, max_restarts: 0 }\n");
    tether_config_free(cfg);
    /* a backend's override is checked merged, at its own key */
    expect_refusal("supervision: { period: 0, max_restarts: 0 }\n"
                   "backends:\n  t: { path: t.so, supervision: { max_restarts: 2 } }\n",
                   NAME ":3:33: backends.t.supervision.period: 0 with max_restarts 2");
    expect_refusal("backends:\n  t: { path: t.so, supervision: { period: 0 } }\n",
                   NAME ":2:43: backends.t.supervision.period: 0 with max_restarts 1");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");

    TCase *tc = tcase("good", clean_env, clean_env);
    tcase_add_test(tc, parses_design_example_with_merged_overrides);
    tcase_add_test(tc, absent_keys_take_defaults);
    tcase_add_test(tc, global_timeouts_merge_wherever_given);
    tcase_add_test(tc, accepts_plain_integer_and_float_timeouts);
    tcase_add_test(tc, relative_paths_resolve_against_dir);
    tcase_add_test(tc, null_tilde_and_empty_events_mean_no_log);
    tcase_add_test(tc, option_values_are_kept_as_strings);
    tcase_add_test(tc, max_frame_bounds_are_inclusive);
    tcase_add_test(tc, find_returns_entry_or_null);
    suite_add_tcase(s, tc);

    tc = tcase("refusals", clean_env, clean_env);
    tcase_add_test(tc, unknown_top_level_key_names_key_and_position);
    tcase_add_test(tc, unknown_backend_key_names_dotted_path);
    tcase_add_test(tc, unknown_timeout_key_names_dotted_path);
    tcase_add_test(tc, timeouts_not_a_mapping_is_wrong_type);
    tcase_add_test(tc, quoted_number_is_refused);
    tcase_add_test(tc, strtod_only_spellings_are_not_numbers);
    tcase_add_test(tc, negative_timeout_names_key_and_line);
    tcase_add_test(tc, zero_spawn_timeout_is_refused);
    tcase_add_test(tc, nan_and_infinite_timeouts_are_refused);
    tcase_add_test(tc, backend_timeout_override_is_checked_with_its_path);
    tcase_add_test(tc, path_must_be_a_string);
    tcase_add_test(tc, options_must_be_a_mapping_of_scalars);
    tcase_add_test(tc, backend_entry_must_be_a_mapping);
    tcase_add_test(tc, backend_without_path_is_refused);
    tcase_add_test(tc, missing_backends_is_refused);
    tcase_add_test(tc, empty_backends_is_refused);
    tcase_add_test(tc, max_frame_out_of_range_or_not_integer_is_refused);
    tcase_add_test(tc, unknown_default_backend_is_refused);
    tcase_add_test(tc, missing_default_backend_with_several_backends_is_refused);
    tcase_add_test(tc, duplicate_key_is_refused);
    tcase_add_test(tc, empty_file_is_refused);
    tcase_add_test(tc, top_level_must_be_a_mapping);
    tcase_add_test(tc, refuses_alias_bomb);
    tcase_add_test(tc, refuses_alias_and_unused_anchor);
    tcase_add_test(tc, not_yaml_reports_parser_problem_and_position);
    tcase_add_test(tc, more_than_one_document_is_refused);
    tcase_add_test(tc, nul_byte_in_string_is_refused);
    tcase_add_test(tc, deep_nesting_is_refused);
    tcase_add_test(tc, supervision_defaults_are_otps);
    tcase_add_test(tc, supervision_merges_per_backend_overrides);
    tcase_add_test(tc, supervision_bad_values_name_key_and_position);
    tcase_add_test(tc, supervision_period_zero_with_restarts_is_refused);
    suite_add_tcase(s, tc);

    tc = tcase("environment", clean_env, clean_env);
    tcase_add_test(tc, tether_backend_env_overrides_default);
    tcase_add_test(tc, tether_backend_env_settles_missing_default);
    tcase_add_test(tc, tether_backend_env_must_name_a_backend);
    tcase_add_test(tc, empty_tether_backend_env_is_ignored);
    suite_add_tcase(s, tc);

    tc = tcase("files", make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, load_reads_file_and_resolves_against_its_folder);
    tcase_add_test(tc, load_errors_name_the_file);
    tcase_add_test(tc, load_uses_tether_config_env);
    tcase_add_test(tc, load_defaults_to_plugins_yaml_in_current_folder);
    tcase_add_test(tc, load_missing_file_names_the_file);
    tcase_add_test(tc, load_missing_env_file_says_it_came_from_tether_config);
    tcase_add_test(tc, load_folder_is_refused);
#ifdef TOP_SRCDIR
    tcase_add_test(tc, in_tree_plugins_yaml_loads);
#endif
    suite_add_tcase(s, tc);
    return s;
}


int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
