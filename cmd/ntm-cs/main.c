/*
 * ntm-cs - the Cache Server. So far only the shared server skeleton
 * (identity, certificate, /v1/health, signed /v1/status); caching end-to-end
 * encrypted objects arrives in a later protocol version.
 */
#include "srv.h"

static const struct srv_spec cs_spec = {
	.role	= NTM_ROLE_CS,
	.prog	= "ntm-cs",
	.title	= "Cache Server",
	.note	= "This version serves only /v1/health and the signed /v1/status;\n"
		  "caching data for offline clients arrives in a later protocol version.",
};

int
main(int argc, char *argv[])
{
	return srv_main(&cs_spec, argc, argv);
}
