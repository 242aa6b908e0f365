/* Unit tests for util/: size parsing and name validation. */
#include "util/name.h"
#include "util/size.h"

#include <criterion/criterion.h>
#include <errno.h>

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
