// Child process of bench/api: the floor for the API figures, a bare fastify server on `pg` with
// no schema, no auth library and no logging, answering each route with the rows of the page query
// it is given (the same SQL the control plane runs) as plain JSON.
//   node api-bare-server.mjs <config JSON: { databaseUrl, routes: { [path]: { sql, params: [query
//     parameter name or literal] } } }>
// Prints {"event":"listening","url":…}.
import Fastify from 'fastify';
import pg from 'pg';

const { databaseUrl, token, routes } = JSON.parse(process.argv[2]);
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
const app = Fastify({ logger: false });
for (const [path, { sql, params }] of Object.entries(routes)) {
  app.get(path, async (request, reply) => {
    if (request.headers.authorization !== `Bearer ${token}`) return reply.code(401).send({ error: 'unauthorized' });
    const values = params.map((p) => (typeof p === 'string' && p.startsWith('$') ? request.query[p.slice(1)] : p));
    const { rows } = await pool.query(sql, values);
    return { images: rows };
  });
}
const url = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ event: 'listening', url })}\n`);
const stop = async () => {
  await app.close();
  await pool.end();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
