/* rules/default.yaml, embedded as ag_default_rules (NUL-terminated) and
 * ag_default_rules_len, with its SHA-256 in hex (RULES_HASH, from the
 * build) as ag_default_rules_hash: a process need not hash a constant.
 * Hidden: nothing but hooks leaves the library. */
	.section .rodata
	.globl ag_default_rules
	.hidden ag_default_rules
	.type ag_default_rules, @object
	.balign 16
ag_default_rules:
	.incbin RULES_FILE
1:
	.byte 0
	.size ag_default_rules, . - ag_default_rules
	.globl ag_default_rules_len
	.hidden ag_default_rules_len
	.type ag_default_rules_len, @object
	.balign 8
ag_default_rules_len:
	.quad 1b - ag_default_rules
	.size ag_default_rules_len, 8
	.globl ag_default_rules_hash
	.hidden ag_default_rules_hash
	.type ag_default_rules_hash, @object
ag_default_rules_hash:
	.asciz RULES_HASH
	.size ag_default_rules_hash, . - ag_default_rules_hash
	.section .note.GNU-stack,"",@progbits
