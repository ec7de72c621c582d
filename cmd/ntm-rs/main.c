/*
 * ntm-rs - the Relay Server. So far only the shared server skeleton
 * (identity, certificate, /v1/health, signed /v1/status); relaying the UDP
 * tunnel arrives in a later protocol version.
 */
#include "srv.h"

static const struct srv_spec rs_spec = {
	.role	= NTM_ROLE_RS,
	.prog	= "ntm-rs",
	.title	= "Relay Server",
	.note	= "This version serves only /v1/health and the signed /v1/status;\n"
		  "relaying tunnels arrives in a later protocol version.",
};

int
main(int argc, char *argv[])
{
	return srv_main(&rs_spec, argc, argv);
}
