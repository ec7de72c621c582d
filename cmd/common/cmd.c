/*
 * cmd.c - the command model of cmd.h: one parser for every command's
 * options and operands, and the help and command dump made from the
 * same entries.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "common.h"

void
cmd_verr(const char *prog, const char *cmd, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	fflush(stdout);
	if (cmd)
		fprintf(stderr, "%s: %s: %s\n", prog, cmd, msg);
	else
		fprintf(stderr, "%s: %s\n", prog, msg);
}

void
cmd_err(const char *prog, const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd_verr(prog, cmd, fmt, ap);
	va_end(ap);
}

const struct cmd_entry *
cmd_find(const struct cmd_entry *const *table, const char *name)
{
	for (; table && *table; table++)
		if (strcmp((*table)->name, name) == 0)
			return *table;
	return NULL;
}

int
cmd_sub_takes(const struct cmd_entry *sub, const char *opt)
{
	size_t n = strlen(opt);

	if (sub == NULL || sub->takes == NULL || strcmp(opt, "help") == 0)
		return 1;
	for (const char *p = sub->takes; *p; ) {
		size_t w = strcspn(p, " ");

		if (w == n && strncmp(p, opt, n) == 0)
			return 1;
		p += w;
		p += strspn(p, " ");
	}
	return 0;
}

static const struct cmd_opt *
find_long(const struct cmd_opt *o, const char *name, size_t len)
{
	for (; o->name; o++)
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

static const struct cmd_opt *
find_short(const struct cmd_opt *o, int ch)
{
	for (; o->name; o++)
		if (o->shortopt && o->shortopt == ch)
			return o;
	return NULL;
}

const struct cmd_opt *
cmd_opt_word(const struct cmd_entry *cmd, const char *w)
{
	if (strncmp(w, "--", 2) == 0)
		return strchr(w, '=') ? NULL : find_long(cmd->opts, w + 2, strlen(w + 2));
	if (w[0] == '-' && w[1] != '\0' && w[2] == '\0')
		return find_short(cmd->opts, (unsigned char)w[1]);
	return NULL;
}

/* Stores value (NULL for a flag) at o's destination: 0, or -1 after the
 * message naming the bad value. */
static int
opt_store(struct cmd_call *c, const struct cmd_opt *o, const char *value)
{
	char *dst = (char *)c->args + o->off, *end;
	double d;

	switch (o->type) {
	case CMD_FLAG:
		*(int *)(void *)dst = o->val ? o->val : 1;
		return 0;
	case CMD_STRING:
	case CMD_FILE:
	case CMD_PEER:
		if (o->expect && value[0] == '\0')
			break;
		*(const char **)(void *)dst = value;
		return 0;
	case CMD_INT:
		if (parse_long(value, o->min, o->max, (long *)(void *)dst) < 0)
			break;
		return 0;
	case CMD_REAL:
		errno = 0;
		d = strtod(value, &end);
		if (errno || end == value || *end || !(d >= o->rmin) || d > o->rmax)
			break;
		*(double *)(void *)dst = d;
		return 0;
	case CMD_CALL:
		return o->set(c->args, o, value);
	}
	cmd_err(c->prog, c->cmd->name, "--%s '%s': %s", o->name, value, o->expect);
	return -1;
}

/* After "-x": its value from the rest of the word or the next one. */
static int
short_group(struct cmd_call *c, int argc, char **argv, int *i)
{
	const char *s = argv[*i], *cmd = c->cmd->name;
	const struct cmd_opt *o;

	for (size_t k = 1; s[k] != '\0'; k++) {
		int ch = (unsigned char)s[k];
		const char *value = NULL;

		if ((o = find_short(c->cmd->opts, ch)) == NULL) {
			cmd_err(c->prog, cmd, "unknown option '-%c' (see '%s %s --help')", ch,
			    c->prog, cmd);
			return CMD_PARSE_ERR;
		}
		if (o->arg) {
			if (s[k + 1] != '\0')
				value = s + k + 1;
			else if (*i + 1 < argc)
				value = argv[++*i];
			else {
				cmd_err(c->prog, cmd, "option '-%c' needs an argument %s", ch,
				    o->arg);
				return CMD_PARSE_ERR;
			}
		}
		if (strcmp(o->name, "help") == 0)
			return CMD_PARSE_HELP;
		if (opt_store(c, o, value) < 0)
			return CMD_PARSE_ERR;
		c->given |= 1ULL << (o - c->cmd->opts);
		if (value)
			break;
	}
	return CMD_PARSE_RUN;
}

/* "--name" or "--name=value", value maybe from the next word. */
static int
long_opt(struct cmd_call *c, int argc, char **argv, int *i)
{
	const char *s = argv[*i], *cmd = c->cmd->name, *value = NULL;
	const char *eq = strchr(s + 2, '=');
	size_t len = eq ? (size_t)(eq - (s + 2)) : strlen(s + 2);
	const struct cmd_opt *o;

	if ((o = find_long(c->cmd->opts, s + 2, len)) == NULL) {
		cmd_err(c->prog, cmd, "unknown option '%.*s' (see '%s %s --help')",
		    (int)(len + 2), s, c->prog, cmd);
		return CMD_PARSE_ERR;
	}
	if (o->arg == NULL && eq) {
		cmd_err(c->prog, cmd, "option '--%s' takes no argument", o->name);
		return CMD_PARSE_ERR;
	}
	if (o->arg) {
		if (eq)
			value = eq + 1;
		else if (*i + 1 < argc)
			value = argv[++*i];
		else {
			cmd_err(c->prog, cmd, "option '--%s' needs an argument %s", o->name,
			    o->arg);
			return CMD_PARSE_ERR;
		}
	}
	if (strcmp(o->name, "help") == 0)
		return CMD_PARSE_HELP;
	if (opt_store(c, o, value) < 0)
		return CMD_PARSE_ERR;
	c->given |= 1ULL << (o - c->cmd->opts);
	return CMD_PARSE_RUN;
}

/* The names of the subcommands, ", " between them, into buf. */
static const char *
sub_names(const struct cmd_entry *cmd, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (const struct cmd_entry *const *s = cmd->subs; *s && n < len; s++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", (*s)->name);
	return buf;
}

/* The subcommand word, options it does not take. */
static int
pick_sub(struct cmd_call *c)
{
	const struct cmd_entry *cmd = c->cmd;
	char names[256];

	if (c->npos < 1) {
		cmd_err(c->prog, cmd->name, "%s", cmd->missing);
		return CMD_PARSE_ERR;
	}
	if ((c->sub = cmd_find(cmd->subs, c->pos[0])) == NULL) {
		cmd_err(c->prog, cmd->name, "unknown subcommand '%s' (%s)", c->pos[0],
		    sub_names(cmd, names, sizeof(names)));
		return CMD_PARSE_ERR;
	}
	c->pos++;
	c->npos--;
	if (!(cmd->flags & CMD_SUBOPTS_STRICT))
		return CMD_PARSE_RUN;
	for (size_t i = 0; cmd->opts[i].name; i++) {
		const struct cmd_opt *o = &cmd->opts[i];

		if ((c->given & (1ULL << i)) && !cmd_sub_takes(c->sub, o->name)) {
			cmd_err(c->prog, cmd->name, "%s%s does not apply to '%s' (see '%s %s "
			    "--help')", o->group ? "" : "--", o->group ? o->group : o->name,
			    c->sub->name, c->prog, cmd->name);
			return CMD_PARSE_ERR;
		}
	}
	return CMD_PARSE_RUN;
}

/* Operand counts of the subcommand, or of the command. */
static int
check_operands(struct cmd_call *c)
{
	const struct cmd_entry *e = c->sub ? c->sub : c->cmd;
	char where[64] = "";

	if (c->sub)
		snprintf(where, sizeof(where), "%s: ", c->sub->name);
	if (c->npos < e->min) {
		cmd_err(c->prog, c->cmd->name, "%s%s", where, e->missing);
		return CMD_PARSE_ERR;
	}
	if (e->max != CMD_ANY && c->npos > e->max) {
		cmd_err(c->prog, c->cmd->name, "%sunexpected argument '%s'", where,
		    c->pos[e->max]);
		return CMD_PARSE_ERR;
	}
	return CMD_PARSE_RUN;
}

int
cmd_parse(struct cmd_call *c, const char *prog, const struct cmd_entry *cmd, int argc,
    char **argv)
{
	int i, dashdash = 0, r;

	memset(c, 0, sizeof(*c));
	c->prog = prog;
	c->cmd = cmd;
	if ((c->args = calloc(1, cmd->args_size ? cmd->args_size : 1)) == NULL ||
	    (c->pos = calloc((size_t)argc + 1, sizeof(*c->pos))) == NULL)
		fatal("calloc");
	c->pos0 = c->pos;
	if (cmd->init)
		cmd->init(c->args);
	for (i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (dashdash || s[0] != '-' || s[1] == '\0')
			c->pos[c->npos++] = argv[i];
		else if (strcmp(s, "--") == 0)
			dashdash = 1;
		else if ((r = s[1] == '-' ? long_opt(c, argc, argv, &i) :
		    short_group(c, argc, argv, &i)) != CMD_PARSE_RUN) {
			if (r == CMD_PARSE_HELP)
				cmd_help(stdout, prog, cmd);
			return r;
		}
	}
	if (cmd->subs && (r = pick_sub(c)) != CMD_PARSE_RUN)
		return r;
	return check_operands(c);
}

int
cmd_exec(void *ctx, struct cmd_call *c)
{
	if (c->sub && c->sub->exec)
		return c->sub->exec(ctx, c);
	return c->cmd->exec(ctx, c);
}

void
cmd_call_free(struct cmd_call *c)
{
	free(c->args);
	free(c->pos0);
	c->args = NULL;
	c->pos = c->pos0 = NULL;
}

int
cmd_run(void *ctx, const char *prog, const struct cmd_entry *cmd, int argc, char **argv,
    int usage)
{
	struct cmd_call c;
	int r, ret;

	r = cmd_parse(&c, prog, cmd, argc, argv);
	ret = r == CMD_PARSE_RUN ? cmd_exec(ctx, &c) : r == CMD_PARSE_HELP ? 0 : usage;
	cmd_call_free(&c);
	return ret;
}

/* ---- help and the command dump ------------------------------------------ */

size_t
cmd_synopsis(char *buf, size_t len, const struct cmd_entry *cmd,
    const struct cmd_entry *sub)
{
	const struct cmd_entry *e = sub ? sub : cmd;
	size_t n;

	n = (size_t)snprintf(buf, len, "%s%s%s", e->name, e->usage && *e->usage ? " " : "",
	    e->usage ? e->usage : "");
	for (const struct cmd_opt *o = cmd->opts; o->name && n < len; o++)
		if (strcmp(o->name, "help") != 0 && cmd_sub_takes(sub, o->name))
			n += (size_t)snprintf(buf + n, len - n, " [--%s%s%s]", o->name,
			    o->arg ? " " : "", o->arg ? o->arg : "");
	return n;
}

/* The subcommands with a summary, one line each. */
static void
help_subs(FILE *fp, const struct cmd_entry *cmd)
{
	char line[256];
	int title = 0;

	for (const struct cmd_entry *const *s = cmd->subs; s && *s; s++) {
		if ((*s)->summary == NULL)
			continue;
		if (!title++)
			fprintf(fp, "\nsubcommands:\n");
		cmd_synopsis(line, sizeof(line), cmd, *s);
		if (strlen(line) > 30)
			fprintf(fp, "  %s\n  %-30s %s\n", line, "", (*s)->summary);
		else
			fprintf(fp, "  %-30s %s\n", line, (*s)->summary);
	}
}

void
cmd_help(FILE *fp, const char *prog, const struct cmd_entry *cmd)
{
	char left[64];

	fprintf(fp, "usage: %s %s [OPTIONS]%s%s\n\n%s\n\noptions:\n", prog, cmd->name,
	    *cmd->usage ? " " : "", cmd->usage, cmd->summary);
	for (const struct cmd_opt *o = cmd->opts; o->name; o++) {
		if (o->shortopt)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->shortopt, o->name,
			    o->arg ? " " : "", o->arg ? o->arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->name,
			    o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(fp, "  %-26s %s\n", left, o->help);
	}
	help_subs(fp, cmd);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
dump_line(FILE *fp, const struct cmd_entry *c, const struct cmd_entry *sub)
{
	const char *names[64];
	size_t n = 0;

	for (const struct cmd_opt *o = c->opts; o->name && n < 64; o++)
		if (cmd_sub_takes(sub, o->name))
			names[n++] = o->name;
	qsort(names, n, sizeof(names[0]), cmp_str);
	fprintf(fp, "%s%s%s\t", c->name, sub ? " " : "", sub ? sub->name : "");
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "%s--%s", i ? " " : "", names[i]);
	fprintf(fp, "\n");
}

void
cmd_dump(FILE *fp, const struct cmd_entry *const *table)
{
	for (const struct cmd_entry *const *c = table; *c; c++)
		dump_line(fp, *c, NULL);
	for (const struct cmd_entry *const *c = table; *c; c++)
		for (const struct cmd_entry *const *s = (*c)->subs; s && *s; s++)
			dump_line(fp, *c, *s);
}
