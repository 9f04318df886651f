// Child process of bench/api: the floor for the API figures, a bare fastify server on `pg` with
// no schema, no validation library and no logging, answering each route with the rows of the SQL
// it is given (the statement the control plane sends for that page, with its values), as plain
// JSON. Like the control plane, it keeps the statement prepared on each connection.
//   node api-bare-server.mjs <config JSON: { databaseUrl, token, routes: { [path]: { sql, params } } }>
// Prints {"event":"listening","url":…}.
import Fastify from 'fastify';
import pg from 'pg';

const { databaseUrl, token, routes } = JSON.parse(process.argv[2]);
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
pool.on('error', () => undefined); // an idle client whose database the bench drops at the end
const app = Fastify({ logger: false });
for (const [index, [path, { sql, params }]] of Object.entries(routes).entries()) {
  app.get(path, async (request, reply) => {
    if (request.headers.authorization !== `Bearer ${token}`) return reply.code(401).send({ error: 'unauthorized' });
    const { rows } = await pool.query({ name: `bare_${index}`, text: sql, values: params });
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
