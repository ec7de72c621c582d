/*
 * unit.h - a tiny table-friendly test harness. Each test file defines tests
 * with TEST(name) and lists them in UNIT_MAIN(...). Output: one line per
 * failed check, then "N passed, N failed".
 */
#ifndef NTM_UNIT_H
#define NTM_UNIT_H
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static int unit_failed_checks;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
	unit_failed_checks++; } } while (0)
#define CHECK_EQ(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) { fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
	__FILE__, __LINE__, #a, _a, #b, _b); unit_failed_checks++; } } while (0)
#define CHECK_STR(a, b) do { const char *_a = (a), *_b = (b); \
	if (!_a || !_b || strcmp(_a, _b) != 0) { fprintf(stderr, \
	"%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a, \
	_a ? _a : "(null)", _b ? _b : "(null)"); unit_failed_checks++; } } while (0)

#define TEST(name) static void test_##name(void)
struct unit_test { const char *name; void (*fn)(void); };
#define T(name) { #name, test_##name }
#define UNIT_MAIN(...) \
int main(void) { \
	static const struct unit_test tests[] = { __VA_ARGS__ }; \
	int passed = 0, failed = 0; \
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) { \
		int before = unit_failed_checks; \
		tests[i].fn(); \
		if (unit_failed_checks == before) passed++; \
		else { failed++; fprintf(stderr, "FAIL %s\n", tests[i].name); } \
	} \
	printf("%s: %d passed, %d failed\n", __FILE__, passed, failed); \
	return failed ? 1 : 0; \
}
#endif
