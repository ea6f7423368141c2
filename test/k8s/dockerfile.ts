/**
 * A small Dockerfile reader for the image tests (no container engine here): instructions with
 * line continuations joined and comments dropped, grouped into build stages, with ARG defaults
 * substituted into FROM lines.
 */

/** One instruction: its keyword (upper case), its raw arguments and its first line number. */
export interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

/** One build stage: its base image (ARGs resolved), its alias and its instructions. */
export interface Stage {
  from: string;
  alias: string | null;
  instructions: Instruction[];
}

/** Parses Dockerfile text; throws naming the line of anything it cannot read. */
export function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i];
    if (/^\s*(#.*)?$/.test(line)) continue;
    // A trailing backslash continues the instruction; comment lines inside it are dropped.
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      i++;
      if (/^\s*#/.test(lines[i])) continue;
      line = `${line.replace(/\s*\\\s*$/, ' ')}${lines[i].trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile line ${start + 1}: cannot read "${line}"`);
    instructions.push({ keyword: m[1].toUpperCase(), args: m[2].trim(), line: start + 1 });
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'ARG' && stages.length === 0) {
      const [name, value = ''] = ins.args.split('=', 2);
      args.set(name, value);
    } else if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`Dockerfile line ${ins.line}: cannot read FROM ${ins.args}`);
      const from = m[1].replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args.get(a ?? b) ?? '');
      stages.push({ from, alias: m[2] ?? null, instructions: [] });
    } else if (stages.length === 0) {
      throw new Error(`Dockerfile line ${ins.line}: ${ins.keyword} before the first FROM`);
    } else stages[stages.length - 1].instructions.push(ins);
  }
  return { args, stages };
}

/** The exec-form (JSON array) arguments of an instruction, or null for the shell form. */
export function execForm(ins: Instruction): string[] | null {
  if (!ins.args.startsWith('[')) return null;
  return JSON.parse(ins.args) as string[];
}
