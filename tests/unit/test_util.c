/* Unit tests for util/: size and duration parsing, name and address validation. */
#include "util/addr.h"
#include "util/conf.h"
#include "util/duration.h"
#include "util/name.h"
#include "util/size.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

Test(size, parses_binary_suffixes)
{
    uint64_t v = 0;
    cr_assert_eq(vv_parse_size("4096", &v), 0);
    cr_assert_eq(v, 4096);
    cr_assert_eq(vv_parse_size("20G", &v), 0);
    cr_assert_eq(v, 20ULL << 30);
    cr_assert_eq(vv_parse_size("1k", &v), 0);
    cr_assert_eq(v, 1024);
    cr_assert_eq(vv_parse_size("3TiB", &v), 0);
    cr_assert_eq(v, 3ULL << 40);
    cr_assert_eq(vv_parse_size("5MB", &v), 0);
    cr_assert_eq(v, 5ULL << 20);
}

Test(size, rejects_garbage)
{
    uint64_t v = 7;
    cr_assert_eq(vv_parse_size("", &v), EINVAL);
    cr_assert_eq(vv_parse_size("-1G", &v), EINVAL);
    cr_assert_eq(vv_parse_size("1.5G", &v), EINVAL);
    cr_assert_eq(vv_parse_size("12Q", &v), EINVAL);
    cr_assert_eq(vv_parse_size("1Gx", &v), EINVAL);
    cr_assert_eq(vv_parse_size("99999999999999999999", &v), ERANGE);
    cr_assert_eq(vv_parse_size("9000000P", &v), ERANGE);
    cr_assert_eq(v, 7, "a failed parse must not change the output");
}

Test(size, formats)
{
    char b[32];
    cr_assert_str_eq(vv_format_size(20ULL << 30, b, sizeof(b)), "20G");
    cr_assert_str_eq(vv_format_size(1536, b, sizeof(b)), "1.5K");
    cr_assert_str_eq(vv_format_size(100, b, sizeof(b)), "100");
}

Test(name, accepts_good_names)
{
    cr_assert_null(vv_name_check("data"));
    cr_assert_null(vv_name_check("db-01.vol_2"));
    cr_assert_null(vv_name_check("0"));
}

Test(name, rejects_bad_names)
{
    cr_assert_not_null(vv_name_check(""));
    cr_assert_not_null(vv_name_check(NULL));
    cr_assert_not_null(vv_name_check("../x"));
    cr_assert_not_null(vv_name_check(".hidden"));
    cr_assert_not_null(vv_name_check("a/b"));
    cr_assert_not_null(vv_name_check("caf\xc3\xa9"));
    cr_assert_not_null(vv_name_check("with space"));
    char longname[70];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    cr_assert_not_null(vv_name_check(longname));
    longname[64] = '\0';
    cr_assert_null(vv_name_check(longname));
}

Test(duration, parses_units)
{
    uint64_t v = 0;
    cr_assert_eq(vv_parse_duration("300", &v), 0);
    cr_assert_eq(v, 300);
    cr_assert_eq(vv_parse_duration("30s", &v), 0);
    cr_assert_eq(v, 30);
    cr_assert_eq(vv_parse_duration("5m", &v), 0);
    cr_assert_eq(v, 300);
    cr_assert_eq(vv_parse_duration("2h", &v), 0);
    cr_assert_eq(v, 7200);
    cr_assert_eq(vv_parse_duration("7d", &v), 0);
    cr_assert_eq(v, 7 * 86400);
    cr_assert_eq(vv_parse_duration("1h30m", &v), 0);
    cr_assert_eq(v, 5400);
    cr_assert_eq(vv_parse_duration("1d2h3m4s", &v), 0);
    cr_assert_eq(v, 86400 + 7200 + 180 + 4);
    cr_assert_eq(vv_parse_duration("0", &v), 0);
    cr_assert_eq(v, 0);
}

Test(duration, rejects_garbage)
{
    uint64_t v = 7;
    const char *bad[] = {"", "s", "-1", "+5", "1.5h", "5M", "5 m", "5ms", "30s5m", "1h1h",
                         "1h30", "5x", " 5", "5 ", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(vv_parse_duration(bad[i], &v), EINVAL, "\"%s\"", bad[i]);
    cr_assert_eq(vv_parse_duration(NULL, &v), EINVAL);
    cr_assert_eq(vv_parse_duration("99999999999999999999", &v), ERANGE);
    cr_assert_eq(vv_parse_duration("9223372036854775807", &v), 0);
    cr_assert_eq(vv_parse_duration("9223372036854775808", &v), ERANGE);
    cr_assert_eq(vv_parse_duration("200000000000000d", &v), ERANGE);
    v = 7;
    cr_assert_eq(vv_parse_duration("106751991167300d1d", &v), EINVAL);
    cr_assert_eq(vv_parse_duration("106751991167300d15h30m7s", &v), 0); /* 2^63-1 */
    cr_assert_eq(v, (uint64_t)INT64_MAX);
    cr_assert_eq(vv_parse_duration("106751991167300d15h30m8s", &v), ERANGE);
    v = 7;
    cr_assert_eq(vv_parse_duration("106751991167300d24h", &v), ERANGE);
    cr_assert_eq(v, 7, "a failed parse must not change the output");
}

Test(duration, formats_and_reads_back)
{
    char b[32];
    cr_assert_str_eq(vv_format_duration(0, b, sizeof(b)), "0s");
    cr_assert_str_eq(vv_format_duration(45, b, sizeof(b)), "45s");
    cr_assert_str_eq(vv_format_duration(300, b, sizeof(b)), "5m");
    cr_assert_str_eq(vv_format_duration(330, b, sizeof(b)), "5m30s");
    cr_assert_str_eq(vv_format_duration(7500, b, sizeof(b)), "2h5m");
    cr_assert_str_eq(vv_format_duration(3 * 86400 + 4 * 3600 + 59, b, sizeof(b)), "3d4h");
    const uint64_t round[] = {1, 59, 60, 61, 3599, 3600, 86399, 86400, 604800};
    for (size_t i = 0; i < sizeof(round) / sizeof(round[0]); i++) {
        uint64_t v = 0;
        cr_assert_eq(vv_parse_duration(vv_format_duration(round[i], b, sizeof(b)), &v), 0);
        cr_assert_leq(v, round[i], "%s", b);
    }
}

Test(addr, accepts_host_port)
{
    char host[254], port[6];
    cr_assert_null(vv_addr_split("10.0.0.2:7700", host, sizeof(host), port, sizeof(port)));
    cr_assert_str_eq(host, "10.0.0.2");
    cr_assert_str_eq(port, "7700");
    cr_assert_null(vv_addr_split("[::1]:1", host, sizeof(host), port, sizeof(port)));
    cr_assert_str_eq(host, "::1");
    cr_assert_str_eq(port, "1");
    cr_assert_null(vv_addr_split("[fe80::1%eth0]:65535", host, sizeof(host), NULL, 0));
    cr_assert_str_eq(host, "fe80::1%eth0");
    cr_assert_null(vv_addr_split("[::ffff:10.0.0.1]:7700", NULL, 0, NULL, 0));
    cr_assert_null(vv_addr_split("peer-2.example.com:7700", NULL, 0, NULL, 0));
    cr_assert_null(vv_addr_split("0.0.0.0:7700", NULL, 0, NULL, 0));
    cr_assert_null(vv_addr_split("[::]:7700", NULL, 0, NULL, 0));
}

Test(addr, rejects_bad_shapes)
{
    const char *bad[] = {"", "host", "host:", ":7700", "host:0", "host:65536", "host:99999",
                         "host:123456", "host:port", "host:77x", "host:+77", "host:-1",
                         "::1:7700", "[::1]7700", "[::1]", "[::1:7700", "[]:7700",
                         "[host]:7700", "[1.2.3.4]:7700", "[::1%]:7700", "a b:7700",
                         "a/b:7700", "h\xc3\xa9:7700", "host:7700 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_not_null(vv_addr_split(bad[i], NULL, 0, NULL, 0), "\"%s\"", bad[i]);
    cr_assert_not_null(vv_addr_split(NULL, NULL, 0, NULL, 0));
    char longhost[300];
    memset(longhost, 'a', 254);
    snprintf(longhost + 254, sizeof(longhost) - 254, ":7700");
    cr_assert_not_null(vv_addr_split(longhost, NULL, 0, NULL, 0));
    memset(longhost, 'a', 253);
    snprintf(longhost + 253, sizeof(longhost) - 253, ":7700");
    cr_assert_null(vv_addr_split(longhost, NULL, 0, NULL, 0));
}

/* ---- settings files ------------------------------------------------------------------------ */

struct seen {
    char text[256];
};

static const char *collect(void *arg, const char *key, const char *value)
{
    struct seen *s = arg;
    if (strcmp(key, "bad") == 0)
        return "no such setting 'bad'";
    size_t n = strlen(s->text);
    snprintf(s->text + n, sizeof(s->text) - n, "[%s=%s]", key, value);
    return NULL;
}

static void conf_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

Test(conf, reads_settings_and_says_where_a_bad_one_is)
{
    char path[] = "/tmp/vvfs-conf-XXXXXX", why[256] = "";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    struct seen s = {""};
    conf_file(path, "# comment\n\n  listen = 127.0.0.1:7700  # trailing\nkey=/etc/k\nempty =\n");
    cr_assert_eq(vv_conf_read(path, collect, &s, why, sizeof(why)), 0, "%s", why);
    cr_assert_str_eq(s.text, "[listen=127.0.0.1:7700][key=/etc/k][empty=]");
    s.text[0] = '\0';
    conf_file(path, "a = 1\nno equals sign\n");
    cr_assert_eq(vv_conf_read(path, collect, &s, why, sizeof(why)), EINVAL);
    cr_assert(strstr(why, ":2: not a setting"), "%s", why);
    conf_file(path, "a = 1\n\nbad = 2\n");
    cr_assert_eq(vv_conf_read(path, collect, &s, why, sizeof(why)), EINVAL);
    cr_assert(strstr(why, ":3: no such setting 'bad'"), "%s", why);
    conf_file(path, " = 2\n");
    cr_assert_eq(vv_conf_read(path, collect, &s, why, sizeof(why)), EINVAL);
    unlink(path);
    cr_assert_eq(vv_conf_read(path, collect, &s, why, sizeof(why)), ENOENT);
}
