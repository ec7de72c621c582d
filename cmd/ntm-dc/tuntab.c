/*
 * tuntab.c - the DC's tunnel table (tuntab.h): a chained hash by tunnel id,
 * one by each end's FQDN, and a list by expiry (every store sets the
 * expiry to now + DC_TUNNEL_TTL_S, so the list is in store order and its
 * head is both the first to expire and the one to drop when full).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tuntab.h"

#define TUN_BUCKETS	65536	/* a power of two, about DC_TUNNELS_MAX */

struct dc_tuntab {
	struct dc_tun		*by_id[TUN_BUCKETS];
	struct dc_tun_end	*by_name[TUN_BUCKETS];
	struct dc_tun		*oldest, *newest;
	size_t			 n;
};

static size_t
id_hash(const uint8_t id[NTM_TUNNEL_ID_LEN])
{
	uint64_t h;

	memcpy(&h, id, sizeof(h));	/* random ids */
	return (size_t)h & (TUN_BUCKETS - 1);
}

/* FNV-1a. */
static size_t
name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (size_t)(h ^ h >> 32) & (TUN_BUCKETS - 1);
}

struct dc_tuntab *
dc_tuntab_new(void)
{
	return calloc(1, sizeof(struct dc_tuntab));
}

static void
end_link(struct dc_tuntab *tab, struct dc_tun *t, int i)
{
	size_t h = name_hash(i ? t->b : t->a);

	t->end[i].t = t;
	t->end[i].next = tab->by_name[h];
	tab->by_name[h] = &t->end[i];
}

static void
end_unlink(struct dc_tuntab *tab, struct dc_tun *t, int i)
{
	struct dc_tun_end **pp;

	for (pp = &tab->by_name[name_hash(i ? t->b : t->a)]; *pp; pp = &(*pp)->next)
		if (*pp == &t->end[i]) {
			*pp = t->end[i].next;
			break;
		}
}

static void
list_unlink(struct dc_tuntab *tab, struct dc_tun *t)
{
	if (t->older)
		t->older->newer = t->newer;
	else
		tab->oldest = t->newer;
	if (t->newer)
		t->newer->older = t->older;
	else
		tab->newest = t->older;
	t->older = t->newer = NULL;
}

static void
list_append(struct dc_tuntab *tab, struct dc_tun *t)
{
	t->older = tab->newest;
	t->newer = NULL;
	if (tab->newest)
		tab->newest->newer = t;
	else
		tab->oldest = t;
	tab->newest = t;
}

static void
tun_remove(struct dc_tuntab *tab, struct dc_tun *t)
{
	struct dc_tun **pp;

	for (pp = &tab->by_id[id_hash(t->id)]; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	end_unlink(tab, t, 0);
	end_unlink(tab, t, 1);
	list_unlink(tab, t);
	tab->n--;
	ntm_wipe(t, sizeof(*t));
	free(t);
}

void
dc_tuntab_free(struct dc_tuntab *tab)
{
	if (tab == NULL)
		return;
	while (tab->oldest)
		tun_remove(tab, tab->oldest);
	free(tab);
}

struct dc_tun *
dc_tun_find(struct dc_tuntab *tab, const uint8_t id[NTM_TUNNEL_ID_LEN], int64_t now)
{
	struct dc_tun *t;

	for (t = tab->by_id[id_hash(id)]; t; t = t->next)
		if (memcmp(t->id, id, NTM_TUNNEL_ID_LEN) == 0)
			return t->expires > now ? t : NULL;
	return NULL;
}

int
dc_tun_store(struct dc_tuntab *tab, const uint8_t id[NTM_TUNNEL_ID_LEN],
    const uint8_t key[NTM_KEY_LEN], const char *a, const char *b, int kind, int64_t now)
{
	struct dc_tun *t;
	size_t h = id_hash(id);

	while (tab->oldest && tab->oldest->expires <= now)
		tun_remove(tab, tab->oldest);
	for (t = tab->by_id[h]; t; t = t->next)
		if (memcmp(t->id, id, NTM_TUNNEL_ID_LEN) == 0)
			break;
	if (t) {
		/* Refreshed: its ends may be named in the other order. */
		end_unlink(tab, t, 0);
		end_unlink(tab, t, 1);
		list_unlink(tab, t);
	} else {
		if (tab->n >= DC_TUNNELS_MAX && tab->oldest)
			tun_remove(tab, tab->oldest);
		if ((t = calloc(1, sizeof(*t))) == NULL)
			return NTM_ERR_NOMEM;
		memcpy(t->id, id, NTM_TUNNEL_ID_LEN);
		t->next = tab->by_id[h];
		tab->by_id[h] = t;
		tab->n++;
	}
	memcpy(t->key, key, NTM_KEY_LEN);
	snprintf(t->a, sizeof(t->a), "%s", a);
	snprintf(t->b, sizeof(t->b), "%s", b);
	t->kind = kind;
	t->expires = now + DC_TUNNEL_TTL_S;
	end_link(tab, t, 0);
	end_link(tab, t, 1);
	list_append(tab, t);
	return 0;
}

struct dc_tun *
dc_tun_next_of(struct dc_tuntab *tab, const char *fqdn, int64_t now, struct dc_tun_end **cur)
{
	struct dc_tun_end *e = *cur ? (*cur)->next : tab->by_name[name_hash(fqdn)];

	for (; e; e = e->next) {
		struct dc_tun *t = e->t;

		if (t->expires > now && strcmp(e == &t->end[0] ? t->a : t->b, fqdn) == 0) {
			*cur = e;
			return t;
		}
	}
	*cur = NULL;
	return NULL;
}
