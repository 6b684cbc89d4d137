/* tests/unit/test_loader.c - the plugin loader: one test per refusal, each
 * pinning the exact "PATH: reason" text of its message, plus the plugins
 * that must load (the test plugin, the in-tree backends) and the
 * capability names. Everything goes through the public API
 * (tether_plugin_probe, tether_supervisor_open*). */
#define _GNU_SOURCE /* nftw's FTW_DEPTH / FTW_PHYS */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tether/backend.h>
#include <tether/tether.h>

#ifndef TOP_BUILDDIR
#error "TOP_BUILDDIR must name the (absolute) build tree"
#endif

#define PLUGIN_DIR TOP_BUILDDIR "/tests/unit/plugins/.libs/"
#define GOOD PLUGIN_DIR "good.so"
#define BACKEND(name) TOP_BUILDDIR "/backends/" name "/.libs/" name ".so"

/* What the loader needs of a vtable: every member up to `release`. */
#define ABI1_PREFIX (offsetof(struct tether_backend, release) + sizeof(void (*)(void)))

static char basedir[64];      /* one per test case, made in Check's parent */
static char tmpdir[PATH_MAX];  /* one per test, inside basedir */
static struct tether_error err;
static struct tether_plugin_info info;

/* ---- fixtures: a private temporary folder per test ---------------------- */

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(char *dir)
{
    if (dir[0])
        nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    dir[0] = '\0';
}

/* Unchecked: runs in the runner's own process, so the teardown removes
 * what a test left behind even when its forked child died on a failed
 * assertion (which skips the checked teardown). */
static void make_basedir(void)
{
    snprintf(basedir, sizeof basedir, "/tmp/tether_test_loader.XXXXXX");
    if (!mkdtemp(basedir))
        basedir[0] = '\0';
}

static void remove_basedir(void)
{
    remove_tree(basedir);
}

static void make_tmpdir(void)
{
    memset(&err, 0, sizeof err);
    memset(&info, 0, sizeof info);
    ck_assert_msg(basedir[0], "cannot create a folder in /tmp");
    snprintf(tmpdir, sizeof tmpdir, "%s/t.XXXXXX", basedir);
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    remove_tree(tmpdir);
}

/* ---- helpers ------------------------------------------------------------ */

/* tmpdir/NAME into buf. */
static const char *in_tmp(char *buf, size_t n, const char *name)
{
    int w = snprintf(buf, n, "%s/%s", tmpdir, name);
    ck_assert(w > 0 && (size_t)w < n);
    return buf;
}

/* A byte-for-byte copy of `src` at `dst`, then chmod `mode` (exactly, whatever
 * the umask). */
static void copy_file(const char *src, const char *dst, mode_t mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    ck_assert_msg(in >= 0, "open %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ck_assert_msg(out >= 0, "create %s: %s", dst, strerror(errno));
    char buf[65536];
    ssize_t r;
    while ((r = read(in, buf, sizeof buf)) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)r), r);
    ck_assert_int_eq(r, 0);
    close(in);
    ck_assert_int_eq(close(out), 0);
    ck_assert_int_eq(chmod(dst, mode), 0);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_eq(fputs(text, fp) >= 0, 1);
    ck_assert_int_eq(fclose(fp), 0);
    ck_assert_int_eq(chmod(path, mode), 0);
}

/* Probe `path`; it must be refused with exactly "PATH: reason". */
static void expect_refusal(const char *path, const char *reason)
{
    char want[TETHER_ERROR_MSG_MAX];
    snprintf(want, sizeof want, "%s: %s", path, reason);
    memset(&err, 0, sizeof err);
    int rc = tether_plugin_probe(path, &info, &err);
    ck_assert_msg(rc == TETHER_ELOAD, "probe %s: rc %d (%s), want TETHER_ELOAD", path, rc,
                  err.msg);
    ck_assert_int_eq(err.code, TETHER_ELOAD);
    ck_assert_str_eq(err.msg, want);
}

/* Probe `path`; it must load, filling `info`. */
static void expect_probe_ok(const char *path)
{
    memset(&err, 0, sizeof err);
    memset(&info, 0, sizeof info);
    int rc = tether_plugin_probe(path, &info, &err);
    ck_assert_msg(rc == 0, "probe %s: rc %d: %s", path, rc, err.msg);
}

static void real_path(const char *path, char *out)
{
    ck_assert_msg(realpath(path, out) != NULL, "realpath %s: %s", path, strerror(errno));
}

/* A one-backend configuration naming `name` at `path`; caller frees it. */
static struct tether_config *config_for(const char *name, const char *path)
{
    char text[PATH_MAX + 128];
    snprintf(text, sizeof text, "backends:\n  %s: { path: \"%s\" }\n", name, path);
    struct tether_config *cfg = NULL;
    int rc = tether_config_parse(text, strlen(text), "t.yaml", tmpdir, &cfg, &err);
    ck_assert_msg(rc == 0, "config: %s\n%s", err.msg, text);
    return cfg;
}

/* ---- refusals of the file itself ---------------------------------------- */

START_TEST(refuses_empty_and_null_path)
{
    ck_assert_int_eq(tether_plugin_probe("", &info, &err), TETHER_ELOAD);
    ck_assert_int_eq(err.code, TETHER_ELOAD);
    ck_assert_str_eq(err.msg, "plugin path is empty");
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(tether_plugin_probe(NULL, &info, &err), TETHER_ELOAD);
    ck_assert_str_eq(err.msg, "plugin path is empty");
}
END_TEST

START_TEST(refuses_missing_file_naming_path_and_errno)
{
    char path[PATH_MAX];
    expect_refusal(in_tmp(path, sizeof path, "absent.so"),
                   "cannot open plugin: No such file or directory");
}
END_TEST

START_TEST(refuses_missing_folder_naming_path_and_errno)
{
    char path[PATH_MAX];
    expect_refusal(in_tmp(path, sizeof path, "nowhere/absent.so"),
                   "cannot open plugin: No such file or directory");
}
END_TEST

START_TEST(refuses_folder_as_not_a_regular_file)
{
    expect_refusal(tmpdir, "not a regular file");
}
END_TEST

START_TEST(refuses_text_file_with_dlerror_text)
{
    char path[PATH_MAX], real[PATH_MAX], reason[TETHER_ERROR_MSG_MAX];
    in_tmp(path, sizeof path, "notes.so");
    write_file(path, "this is a text file, not a shared object\n", 0644);
    /* The loader dlopens the resolved path; ask dlopen the same question to
     * learn the exact dlerror() text the message must carry. */
    real_path(path, real);
    dlerror();
    void *dl = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    ck_assert_ptr_null(dl);
    const char *why = dlerror();
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_nonnull(strstr(why, real)); /* glibc names the file */
    snprintf(reason, sizeof reason, "not a loadable shared object: %s", why);
    expect_refusal(path, reason);
}
END_TEST

/* ---- refusals of the plugin's contents ---------------------------------- */

START_TEST(refuses_plugin_without_entry_symbol)
{
    expect_refusal(PLUGIN_DIR "no_entry.so", "missing entry symbol tether_backend_v1()");
}
END_TEST

START_TEST(refuses_entry_returning_null)
{
    expect_refusal(PLUGIN_DIR "null_vtable.so", "tether_backend_v1() returned NULL");
}
END_TEST

START_TEST(refuses_abi_mismatch_naming_both_versions)
{
    char reason[128];
    snprintf(reason, sizeof reason,
             "ABI mismatch: plugin built for ABI %d, this tether speaks ABI %d",
             TETHER_BACKEND_ABI + 41, TETHER_BACKEND_ABI);
    expect_refusal(PLUGIN_DIR "bad_abi.so", reason);
}
END_TEST

START_TEST(refuses_vtable_smaller_than_mandatory_members)
{
    char reason[128];
    snprintf(reason, sizeof reason, "vtable too small: size 16, need at least %zu",
             (size_t)ABI1_PREFIX);
    expect_refusal(PLUGIN_DIR "small_size.so", reason);
}
END_TEST

START_TEST(refuses_null_mandatory_member_naming_it)
{
    expect_refusal(PLUGIN_DIR "null_member.so", "mandatory vtable member 'hard_kill' is NULL");
}
END_TEST

START_TEST(refuses_backend_name_of_64_characters)
{
    expect_refusal(PLUGIN_DIR "long_name.so", "backend name must be 1 to 63 characters");
}
END_TEST

START_TEST(refuses_unknown_language_naming_it)
{
    expect_refusal(PLUGIN_DIR "bad_language.so",
                   "unknown language 'cobol' (expected \"c\" or \"python\")");
}
END_TEST

START_TEST(refuses_languages_not_starting_with_its_language)
{
    expect_refusal(PLUGIN_DIR "bad_languages.so",
                   "languages 'python,c' does not start with language 'c'");
}
END_TEST

START_TEST(supervisor_open_plugin_reports_the_loader_refusal)
{
    struct tether_config *cfg = config_for("testgood", GOOD);
    tether_supervisor *sup = (tether_supervisor *)&err; /* must be reset */
    ck_assert_int_eq(tether_supervisor_open_plugin(cfg, PLUGIN_DIR "bad_abi.so", &sup, &err),
                     TETHER_ELOAD);
    ck_assert_ptr_null(sup);
    char want[256];
    snprintf(want, sizeof want,
             "%s: ABI mismatch: plugin built for ABI %d, this tether speaks ABI %d",
             PLUGIN_DIR "bad_abi.so", TETHER_BACKEND_ABI + 41, TETHER_BACKEND_ABI);
    ck_assert_str_eq(err.msg, want);
    tether_config_free(cfg);
}
END_TEST

/* ---- permissions -------------------------------------------------------- */

START_TEST(refuses_plugin_file_writable_by_others)
{
    char path[PATH_MAX];
    copy_file(GOOD, in_tmp(path, sizeof path, "good.so"), 0646);
    expect_refusal(path, "refusing a plugin file writable by others");
}
END_TEST

START_TEST(accepts_plugin_file_writable_by_its_group)
{
    char path[PATH_MAX];
    copy_file(GOOD, in_tmp(path, sizeof path, "good.so"), 0664);
    expect_probe_ok(path);
    ck_assert_str_eq(info.name, "testgood");
}
END_TEST

START_TEST(refuses_plugin_in_folder_writable_by_others_naming_folder)
{
    char dir[PATH_MAX], path[PATH_MAX], reason[PATH_MAX + 64];
    in_tmp(dir, sizeof dir, "open");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    in_tmp(path, sizeof path, "open/good.so");
    copy_file(GOOD, path, 0644);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    snprintf(reason, sizeof reason, "refusing a plugin below a folder writable by others (%s)", dir);
    expect_refusal(path, reason);
}
END_TEST

/* The folder check applies to every ancestor of the resolved path. */
START_TEST(refuses_plugin_below_an_ancestor_writable_by_others)
{
    char top[PATH_MAX], mid[PATH_MAX], path[PATH_MAX], reason[PATH_MAX + 64];
    in_tmp(top, sizeof top, "open2");
    ck_assert_int_eq(mkdir(top, 0700), 0);
    in_tmp(mid, sizeof mid, "open2/safe");
    ck_assert_int_eq(mkdir(mid, 0755), 0);
    in_tmp(path, sizeof path, "open2/safe/good.so");
    copy_file(GOOD, path, 0644);
    ck_assert_int_eq(chmod(top, 0777), 0);
    snprintf(reason, sizeof reason, "refusing a plugin below a folder writable by others (%s)", top);
    expect_refusal(path, reason);
}
END_TEST

/* A symbolic link from a safe folder does not launder an unsafe target. */
START_TEST(refuses_symlink_to_plugin_in_folder_writable_by_others)
{
    char dir[PATH_MAX], target[PATH_MAX], link[PATH_MAX], reason[PATH_MAX + 64];
    in_tmp(dir, sizeof dir, "open3");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    in_tmp(target, sizeof target, "open3/good.so");
    copy_file(GOOD, target, 0644);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    in_tmp(link, sizeof link, "link.so");
    ck_assert_int_eq(symlink(target, link), 0);
    snprintf(reason, sizeof reason, "refusing a plugin below a folder writable by others (%s)", dir);
    expect_refusal(link, reason);
}
END_TEST

START_TEST(accepts_plugin_in_sticky_world_writable_folder)
{
    char dir[PATH_MAX], path[PATH_MAX];
    in_tmp(dir, sizeof dir, "sticky");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    in_tmp(path, sizeof path, "sticky/good.so");
    copy_file(GOOD, path, 0644);
    ck_assert_int_eq(chmod(dir, 01777), 0);
    expect_probe_ok(path);
    ck_assert_str_eq(info.name, "testgood");
}
END_TEST

/* ---- the registry: names are unique among loaded plugins ---------------- */

START_TEST(refuses_name_clash_until_the_holder_is_closed)
{
    char copy[PATH_MAX], holder[PATH_MAX], reason[PATH_MAX + 64];
    copy_file(GOOD, in_tmp(copy, sizeof copy, "copy.so"), 0644);
    real_path(GOOD, holder);

    struct tether_config *cfg = config_for("testgood", GOOD);
    tether_supervisor *sup = NULL;
    int rc = tether_supervisor_open_plugin(cfg, GOOD, &sup, &err);
    ck_assert_msg(rc == 0, "open_plugin: %s", err.msg);
    ck_assert_str_eq(tether_supervisor_backend(sup), "testgood");

    snprintf(reason, sizeof reason, "backend name 'testgood' is already taken by %s", holder);
    expect_refusal(copy, reason);

    ck_assert_int_eq(tether_supervisor_close(sup, NULL), 0);
    expect_probe_ok(copy);
    ck_assert_str_eq(info.name, "testgood");
    tether_config_free(cfg);
}
END_TEST

START_TEST(probing_a_held_plugin_shares_it_without_releasing_it)
{
    char copy[PATH_MAX], holder[PATH_MAX], reason[PATH_MAX + 64];
    copy_file(GOOD, in_tmp(copy, sizeof copy, "copy.so"), 0644);
    real_path(GOOD, holder);

    struct tether_config *cfg = config_for("testgood", GOOD);
    tether_supervisor *sup = NULL;
    int rc = tether_supervisor_open_plugin(cfg, GOOD, &sup, &err);
    ck_assert_msg(rc == 0, "open_plugin: %s", err.msg);

    /* the same file is no clash: the probe shares the loaded plugin... */
    expect_probe_ok(GOOD);
    ck_assert_str_eq(info.name, "testgood");
    /* ...and its unload drops only its own reference */
    snprintf(reason, sizeof reason, "backend name 'testgood' is already taken by %s", holder);
    expect_refusal(copy, reason);

    ck_assert_int_eq(tether_supervisor_close(sup, NULL), 0);
    expect_probe_ok(copy);
    tether_config_free(cfg);
}
END_TEST

START_TEST(supervisor_refuses_plugin_named_unlike_its_config_entry)
{
    struct tether_config *cfg = config_for("other", GOOD);
    tether_supervisor *sup = (tether_supervisor *)&err;
    ck_assert_int_eq(tether_supervisor_open(cfg, "other", &sup, &err), TETHER_ELOAD);
    ck_assert_ptr_null(sup);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want, "%s: plugin calls itself 'testgood' but is configured as 'other'",
             cfg->backends[0].path);
    ck_assert_str_eq(err.msg, want);
    /* the refused open left nothing loaded: a copy elsewhere takes the name */
    char copy[PATH_MAX];
    copy_file(GOOD, in_tmp(copy, sizeof copy, "copy.so"), 0644);
    expect_probe_ok(copy);
    tether_config_free(cfg);
}
END_TEST

/* ---- plugins that load -------------------------------------------------- */

START_TEST(probes_good_plugin_filling_name_language_abi_caps)
{
    info.caps = 0xdeadbeef;
    expect_probe_ok(GOOD);
    ck_assert_str_eq(info.name, "testgood");
    ck_assert_str_eq(info.language, "c");
    ck_assert_uint_eq(info.abi, TETHER_BACKEND_ABI);
    ck_assert_uint_eq(info.caps, 0);
    /* info is optional */
    ck_assert_int_eq(tether_plugin_probe(GOOD, NULL, &err), 0);
    /* probing unloads: probing again from a copy elsewhere is no clash */
    char copy[PATH_MAX];
    copy_file(GOOD, in_tmp(copy, sizeof copy, "copy.so"), 0755);
    expect_probe_ok(copy);
}
END_TEST

START_TEST(probes_in_tree_thread_backend)
{
    expect_probe_ok(BACKEND("thread"));
    ck_assert_str_eq(info.name, "thread");
    ck_assert_str_eq(info.language, "c");
    ck_assert_uint_eq(info.abi, TETHER_BACKEND_ABI);
    ck_assert_uint_eq(info.caps & TETHER_CAP_OUT_OF_PROCESS, 0);
}
END_TEST

START_TEST(probes_in_tree_fork_backend)
{
    expect_probe_ok(BACKEND("fork"));
    ck_assert_str_eq(info.name, "fork");
    ck_assert_str_eq(info.language, "c,python"); /* its `languages`: Python targets too */
    ck_assert_uint_eq(info.abi, TETHER_BACKEND_ABI);
    ck_assert_uint_eq(info.caps & TETHER_CAP_OUT_OF_PROCESS, TETHER_CAP_OUT_OF_PROCESS);
}
END_TEST

START_TEST(probes_in_tree_subint_backend_unless_disabled)
{
    /* configure --disable-subint builds no subint.so: nothing to probe */
    if (access(BACKEND("subint"), F_OK) != 0 &&
        access(TOP_BUILDDIR "/backends/subint/subint.la", F_OK) != 0)
        return;
    expect_probe_ok(BACKEND("subint"));
    ck_assert_str_eq(info.name, "subint");
    ck_assert_str_eq(info.language, "python");
    ck_assert_uint_eq(info.abi, TETHER_BACKEND_ABI);
    ck_assert_uint_eq(info.caps & TETHER_CAP_OUT_OF_PROCESS, 0);
}
END_TEST

/* ---- capability names --------------------------------------------------- */

START_TEST(caps_format_writes_dash_for_no_known_bit)
{
    char buf[64];
    tether_caps_format(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "-");
    tether_caps_format(1u << 4, buf, sizeof buf); /* unassigned bit */
    ck_assert_str_eq(buf, "-");
}
END_TEST

START_TEST(caps_format_names_bits_in_bit_order)
{
    char buf[128];
    tether_caps_format(TETHER_CAP_OUT_OF_PROCESS, buf, sizeof buf);
    ck_assert_str_eq(buf, "out-of-process");
    tether_caps_format(TETHER_CAP_CAN_KILL | TETHER_CAP_OUT_OF_PROCESS, buf, sizeof buf);
    ck_assert_str_eq(buf, "out-of-process,can-kill");
    tether_caps_format(TETHER_CAP_NESTED | TETHER_CAP_SURVIVES_CRASH | (1u << 7), buf, sizeof buf);
    ck_assert_str_eq(buf, "survives-crash,nested");
    tether_caps_format(1u << 31, buf, sizeof buf); /* reserved */
    ck_assert_str_eq(buf, "-");
    tether_caps_format(UINT32_MAX, buf, sizeof buf);
    ck_assert_str_eq(buf, "out-of-process,survives-crash,can-kill,nested");
}
END_TEST

START_TEST(caps_format_stays_within_the_buffer)
{
    const char *full = "out-of-process,survives-crash,can-kill,nested";
    char buf[64];
    for (size_t n = 1; n <= strlen(full) + 1; n++) {
        memset(buf, 'X', sizeof buf);
        tether_caps_format(UINT32_MAX, buf, n);
        ck_assert_msg(memchr(buf, '\0', n) != NULL, "n=%zu: not terminated within n", n);
        ck_assert_msg(buf[n] == 'X', "n=%zu: wrote past n bytes", n);
        ck_assert_msg(strncmp(buf, full, strlen(buf)) == 0, "n=%zu: \"%s\"", n, buf);
    }
    tether_caps_format(UINT32_MAX, buf, strlen(full) + 1);
    ck_assert_str_eq(buf, full);
}
END_TEST

/* ---- runner ------------------------------------------------------------- */

static TCase *tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 10);
    tcase_add_unchecked_fixture(tc, make_basedir, remove_basedir);
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    return tc;
}

static Suite *loader_suite(void)
{
    Suite *s = suite_create("loader");

    TCase *tc = tcase("file refusals");
    tcase_add_test(tc, refuses_empty_and_null_path);
    tcase_add_test(tc, refuses_missing_file_naming_path_and_errno);
    tcase_add_test(tc, refuses_missing_folder_naming_path_and_errno);
    tcase_add_test(tc, refuses_folder_as_not_a_regular_file);
    tcase_add_test(tc, refuses_text_file_with_dlerror_text);
    suite_add_tcase(s, tc);

    tc = tcase("vtable refusals");
    tcase_add_test(tc, refuses_plugin_without_entry_symbol);
    tcase_add_test(tc, refuses_entry_returning_null);
    tcase_add_test(tc, refuses_abi_mismatch_naming_both_versions);
    tcase_add_test(tc, refuses_vtable_smaller_than_mandatory_members);
    tcase_add_test(tc, refuses_null_mandatory_member_naming_it);
    tcase_add_test(tc, refuses_backend_name_of_64_characters);
    tcase_add_test(tc, refuses_unknown_language_naming_it);
    tcase_add_test(tc, refuses_languages_not_starting_with_its_language);
    tcase_add_test(tc, supervisor_open_plugin_reports_the_loader_refusal);
    suite_add_tcase(s, tc);

    tc = tcase("permissions");
    tcase_add_test(tc, refuses_plugin_file_writable_by_others);
    tcase_add_test(tc, accepts_plugin_file_writable_by_its_group);
    tcase_add_test(tc, refuses_plugin_in_folder_writable_by_others_naming_folder);
    tcase_add_test(tc, accepts_plugin_in_sticky_world_writable_folder);
    tcase_add_test(tc, refuses_plugin_below_an_ancestor_writable_by_others);
    tcase_add_test(tc, refuses_symlink_to_plugin_in_folder_writable_by_others);
    suite_add_tcase(s, tc);

    tc = tcase("registry");
    tcase_add_test(tc, refuses_name_clash_until_the_holder_is_closed);
    tcase_add_test(tc, probing_a_held_plugin_shares_it_without_releasing_it);
    tcase_add_test(tc, supervisor_refuses_plugin_named_unlike_its_config_entry);
    suite_add_tcase(s, tc);

    tc = tcase("good plugins");
    tcase_add_test(tc, probes_good_plugin_filling_name_language_abi_caps);
    tcase_add_test(tc, probes_in_tree_thread_backend);
    tcase_add_test(tc, probes_in_tree_fork_backend);
    tcase_add_test(tc, probes_in_tree_subint_backend_unless_disabled);
    suite_add_tcase(s, tc);

    tc = tcase("caps");
    tcase_add_test(tc, caps_format_writes_dash_for_no_known_bit);
    tcase_add_test(tc, caps_format_names_bits_in_bit_order);
    tcase_add_test(tc, caps_format_stays_within_the_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(loader_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
