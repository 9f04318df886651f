import { reportError } from './commands.js';
import { buildProgram } from './program.js';

buildProgram().parseAsync(process.argv).catch(reportError);
