/**
 * The floor for a Node daemon: the least a single Node process does per connection on this
 * socket (accept, read, write `OK`, half-close, close on the client's EOF), nothing else.
 * Usage: node dist/bench/floor-node.js PATH   (runs until killed)
 */
import { unlinkSync } from 'node:fs';
import { createServer } from 'node:net';

const path = process.argv[2];
if (!path) throw new Error('usage: floor-node PATH');
try {
  unlinkSync(path);
} catch {
  // nothing there
}
const reply = Buffer.from([0, 2, 0x4f, 0x4b]);
createServer({ allowHalfOpen: true }, (socket) => {
  socket.once('data', () => socket.end(reply));
  socket.on('end', () => socket.destroy());
  socket.on('error', () => {});
}).listen({ path, backlog: 4096 });
