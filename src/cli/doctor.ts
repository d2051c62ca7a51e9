/** `arca doctor`: checks kernel features and tools; prints what is missing and how to fix it. */
export async function runDoctor(): Promise<number> {
  process.stdout.write('arca doctor: not implemented yet\n');
  return 0;
}
