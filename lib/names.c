/* The names operations, actions and SQL classes have in rules, the audit
 * log and the CLI. One table each, so the spellings live in one place. */
#include <string.h>

#include "agentguard.h"

static const char *const op_names[AG_OP_COUNT] = {
	"delete", "rename", "truncate", "exec", "connect", "sql", "link", "io_uring",
	"write", "signal", "mode",
};

static const char *const action_names[AG_ACTION_COUNT] = {
	"allow", "log", "snapshot", "ask", "deny",
};

static const char *const sql_class_names[AG_SQL_CLASS_COUNT] = {
	"other", "read", "insert", "update", "delete", "ddl", "alter_drop",
	"update_all", "delete_all", "truncate", "drop_table", "drop_database",
	"safety_off", "unguarded",
};

static int lookup(const char *const *names, int n, const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

const char *ag_op_name(enum ag_op_kind op)
{
	return (unsigned)op < AG_OP_COUNT ? op_names[op] : "?";
}

int ag_op_parse(const char *name)
{
	return lookup(op_names, AG_OP_COUNT, name);
}

const char *ag_action_name(enum ag_action a)
{
	return (unsigned)a < AG_ACTION_COUNT ? action_names[a] : "?";
}

int ag_action_parse(const char *name)
{
	return lookup(action_names, AG_ACTION_COUNT, name);
}

const char *ag_sql_class_name(enum ag_sql_class c)
{
	return (unsigned)c < AG_SQL_CLASS_COUNT ? sql_class_names[c] : "?";
}

int ag_sql_class_parse(const char *name)
{
	return lookup(sql_class_names, AG_SQL_CLASS_COUNT, name);
}
