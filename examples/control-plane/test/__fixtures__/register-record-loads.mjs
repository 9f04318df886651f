// `node --import` this file to have the process record what it loads (see record-loads.mjs).
import { register } from 'node:module';

register('./record-loads.mjs', import.meta.url);
