/*
 * cmd.h - one command model for the programs in cmd/: every command and
 * subcommand is a const struct cmd_entry with designated initializers (name,
 * summary, usage, options, operand counts, exec). One parser fills the
 * command's own args struct from argv and handles --help, bad values,
 * misplaced options and operand counts once; help, the `help --commands`
 * dump and completion are generated from the same entries.
 *
 * Messages are "PROG: CMD: text" on stderr; the parser never exits.
 */
#ifndef NTM_CMD_H
#define NTM_CMD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "ntm.h"

/* What an option's value is, and how it is stored at args + off. */
enum cmd_type {
	CMD_FLAG,	/* no value: int = .val (1 when .val is 0) */
	CMD_STRING,	/* const char * borrowed from argv; "" refused when .expect */
	CMD_FILE,	/* same, and a path: completion offers files */
	CMD_PEER,	/* same, and a peer's name: completion offers peers */
	CMD_INT,	/* long within [min, max] */
	CMD_REAL,	/* double within [rmin, rmax] (seconds with a fraction) */
	CMD_CALL,	/* set(args, opt, value): 0, or -1 after printing why */
};

/* One option. The one named "help" prints the command's help and stops;
 * a table holds at most 64 (cmd_call.given has a bit for each). */
struct cmd_opt;
struct cmd_opt {
	const char	*name;		/* without "--"; NULL ends a table */
	int		 shortopt;	/* 'u' for -u, 0 if none */
	const char	*arg;		/* metavariable ("FILE"), NULL for a flag */
	const char	*help;
	enum cmd_type	 type;
	size_t		 off;		/* destination: offsetof(args struct, field) */
	int		 val;		/* CMD_FLAG: the value stored */
	long		 min, max;	/* CMD_INT */
	double		 rmin, rmax;	/* CMD_REAL */
	/* a bad value: "--NAME 'VALUE': expect" */
	const char	*expect;
	int		(*set)(void *args, const struct cmd_opt *o, const char *value);
	/* for a subcommand given an option it does not take: the words naming
	 * this option's group ("-L, -R or --remove"); NULL: "--NAME" */
	const char	*group;
};

/* Operands that completion can offer (bits). */
#define CMD_OPERAND_PEER	0x1	/* the first is a peer */
#define CMD_OPERAND_PEERS	0x2	/* all are peers */
#define CMD_OPERAND_FILE	0x4	/* files too */

#define CMD_ANY		(-1)	/* .max: no limit here (exec checks) */

/* Checks that a subcommand takes each option given before running it. */
#define CMD_SUBOPTS_STRICT	0x1

struct cmd_call;
struct cmd_entry {
	const char	*name;
	const char	*summary;
	const char	*usage;		/* operands after "PROG NAME [OPTIONS]" */
	const struct cmd_opt *opts;	/* a command's options (ends with { NULL }) */
	const char	*takes;		/* a subcommand: its command's options that apply,
					 * by name, space-separated ("help" always does) */
	const struct cmd_entry *const *subs;	/* NULL, or ends with NULL */
	int		 flags;		/* CMD_SUBOPTS_STRICT */
	int		 min, max;	/* operand counts (after the subcommand word) */
	const char	*missing;	/* fewer than min: the message (a command with
					 * subs: when there is no subcommand) */
	int		 operands;	/* CMD_OPERAND_*, for completion */
	size_t		 args_size;	/* the args struct the options fill */
	void		(*init)(void *args);	/* defaults, before parsing */
	/* Runs the command: an exit code. ctx is the program's own. */
	int		(*exec)(void *ctx, struct cmd_call *c);
};

/* One parsed command line, handed to exec. */
struct cmd_call {
	const char	*prog;
	const struct cmd_entry *cmd;
	const struct cmd_entry *sub;	/* its subcommand, or NULL */
	void		*args;		/* cmd->args_size bytes, filled */
	char		**pos;		/* operands after the subcommand word (borrowed) */
	int		 npos;
	unsigned long long given;	/* bit i: cmd->opts[i] was given */
	char		**pos0;		/* the allocation behind pos */
};

enum { CMD_PARSE_ERR = -1, CMD_PARSE_HELP = 0, CMD_PARSE_RUN = 1 };

/*
 * Parses argv (argv[0] is the command's name) into c for cmd: allocates
 * c->args (freed by cmd_call_free) and fills it. CMD_PARSE_RUN: run
 * cmd_exec(c). CMD_PARSE_HELP: --help was given and the command's help is
 * printed on stdout. CMD_PARSE_ERR: a usage error was printed.
 */
int  cmd_parse(struct cmd_call *c, const char *prog, const struct cmd_entry *cmd,
    int argc, char **argv);
/* The subcommand's exec, or the command's. */
int  cmd_exec(void *ctx, struct cmd_call *c);
void cmd_call_free(struct cmd_call *c);

/* Parses, runs and frees: the exec's exit code, usage (on a usage error),
 * or 0 after --help. */
int  cmd_run(void *ctx, const char *prog, const struct cmd_entry *cmd, int argc,
    char **argv, int usage);

/* A table is an array of entries ending with NULL. */
const struct cmd_entry *cmd_find(const struct cmd_entry *const *table, const char *name);
/* 1 if the option named opt applies to subcommand sub (always when sub is
 * NULL, and for "help"). */
int  cmd_sub_takes(const struct cmd_entry *sub, const char *opt);
/* The option of cmd behind "--name" / "-x" (a whole word, no "="), or NULL. */
const struct cmd_opt *cmd_opt_word(const struct cmd_entry *cmd, const char *w);

/* "PROG: CMD: message" on stderr (cmd may be NULL), stdout flushed first. */
void cmd_err(const char *prog, const char *cmd, const char *fmt, ...) NTM_PRINTF(3, 4);
void cmd_verr(const char *prog, const char *cmd, const char *fmt, va_list ap);

/* "NAME OPERANDS [--opt ARG]..." of cmd, or of its subcommand sub (its
 * name, the options it takes, its operands) into buf: the length wanted. */
size_t cmd_synopsis(char *buf, size_t len, const struct cmd_entry *cmd,
    const struct cmd_entry *sub);
/* usage, summary and options of cmd; then its subcommands that have a
 * summary, one synopsis line each. */
void cmd_help(FILE *fp, const char *prog, const struct cmd_entry *cmd);
/* "NAME<TAB>--opt1 --opt2 ..." per command, options sorted; then one
 * "NAME SUB<TAB>--opt ..." line per subcommand. */
void cmd_dump(FILE *fp, const struct cmd_entry *const *table);

#endif
