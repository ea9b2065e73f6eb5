// A client that speaks the database's protocol itself (test/e2e/t_wire.sh):
// node's pg or mysql2, never libpq or libmysqlclient.
//
//   node wire_client.js pg|mysql DATABASE STATEMENT...
//
// Each STATEMENT runs in turn on one connection and prints "ok N" (rows
// affected) or "error MESSAGE". A prefix says how it is sent:
//   P:SQL|ARG|ARG  parameters: pg's extended protocol (Parse, Bind,
//                  Execute), mysql2's execute (COM_STMT_PREPARE, EXECUTE)
//   N:SQL          pg: a named prepared statement (Parse with a name)
//   S:SQL          every write the driver makes split into 3-byte pieces,
//                  each its own write(): messages span calls
// Connection: PGHOST (socket directory) and PGUSER, or MYSQL_SOCK; with
// WIRE_TLS=1, PostgreSQL over TLS (PGHOST is then host:port).
'use strict';
const [kind, database, ...stmts] = process.argv.slice(2);

function splitWrites(stream, on) {
	const write = stream.write.bind(stream);
	stream.write = (buf, ...rest) => {
		if (!on.split || typeof buf === 'string' || buf.length < 4)
			return write(buf, ...rest);
		for (let i = 0; i + 3 < buf.length; i += 3)
			write(buf.subarray(i, i + 3));
		return write(buf.subarray(buf.length - ((buf.length - 1) % 3 + 1)), ...rest);
	};
}

async function pg() {
	const { Client } = require('pg');
	const cfg = { database, user: process.env.PGUSER };
	if (process.env.WIRE_TLS) {
		const [host, port] = process.env.PGHOST.split(':');
		Object.assign(cfg, { host, port: +port, ssl: { rejectUnauthorized: false } });
	} else {
		cfg.host = process.env.PGHOST;
	}
	const c = new Client(cfg);
	const on = { split: false };
	let n = 0;
	await c.connect();
	splitWrites(c.connection.stream, on);
	return {
		async run(sql, args, named) {
			const r = named ? await c.query({ name: 'stmt' + ++n, text: sql, values: args || [] })
				: args ? await c.query(sql, args) : await c.query(sql);
			return r.rowCount;
		},
		on,
		end: () => c.end(),
	};
}

async function mysql() {
	const m = require('mysql2/promise');
	const c = await m.createConnection({ socketPath: process.env.MYSQL_SOCK, user: 'root', database });
	const on = { split: false };
	splitWrites(c.connection.stream, on);
	return {
		async run(sql, args) {
			const [r] = args ? await c.execute(sql, args) : await c.query(sql);
			return Array.isArray(r) ? r.length : r.affectedRows;
		},
		on,
		end: () => c.end(),
	};
}

(async () => {
	let conn;
	try {
		conn = await (kind === 'pg' ? pg() : mysql());
	} catch (e) {
		console.log('connect error ' + e.message);
		process.exit(2);
	}
	let failed = 0;
	for (let s of stmts) {
		let args = null, named = false;
		conn.on.split = s.startsWith('S:');
		if (s.startsWith('N:')) {
			named = true;
			[s, ...args] = s.slice(2).split('|');
		} else if (s.startsWith('P:')) {
			[s, ...args] = s.slice(2).split('|');
		} else if (conn.on.split) {
			s = s.slice(2);
		}
		try {
			console.log('ok ' + (await conn.run(s, args, named)));
		} catch (e) {
			failed++;
			console.log('error ' + e.message);
		}
		conn.on.split = false;
	}
	await conn.end();
	process.exit(failed ? 1 : 0);
})();
