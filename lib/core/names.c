/*
 * names.c - the rules for user names, device names and DNS names that
 * tokens, certificates, requests and wire messages are checked against
 * (docs/protocol.md §3.1, POST /v1/as/login): a user name is a DNS label
 * of the device's FQDN.
 */
#include <stddef.h>

#include "ntm-core.h"

int
ntm_valid_user(const char *s)
{
	size_t i;

	if (s == NULL || !(s[0] >= 'a' && s[0] <= 'z'))
		return 0;
	for (i = 1; s[i] != '\0'; i++) {
		if (i >= NTM_USER_MAX)
			return 0;
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-'))
			return 0;
	}
	/* A user name becomes a DNS label of the FQDN: no trailing '-'. */
	return s[i - 1] != '-';
}

int
ntm_valid_device(const char *s)
{
	size_t i;

	if (s == NULL || s[0] == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= NTM_DEVICE_MAX)
			return 0;
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return 0;
	}
	return 1;
}

int
ntm_valid_dnsname(const char *s)
{
	size_t i, label = 0;

	if (s == NULL || s[0] == '\0')
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		char ch = s[i];

		if (i >= NTM_NAME_MAX)
			return 0;
		if (ch == '.') {
			/* Empty label, or one ending with '-'. */
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-'))
			return 0;
		if (ch == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	/* No trailing dot, no trailing '-'. */
	return label > 0 && s[i - 1] != '-';
}
