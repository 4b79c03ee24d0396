/** Literal text at the edges of a compiled Jinja part (text nodes and string literals at the top level). */
import type { Template } from '@huggingface/jinja';

type Node = { type: string; value?: unknown };

function body(t: Template): Node[] {
  return t.parsed.body as unknown as Node[];
}

export function trailingText(t: Template): string {
  let out = '';
  for (const node of [...body(t)].reverse()) {
    if (node.type !== 'StringLiteral') break;
    out = String(node.value) + out;
  }
  return out;
}

export function leadingText(t: Template): string {
  let out = '';
  for (const node of body(t)) {
    if (node.type !== 'StringLiteral') break;
    out += String(node.value);
  }
  return out;
}

/** All top-level literal text, joined. */
export function literalText(t: Template): string {
  return body(t)
    .filter((n) => n.type === 'StringLiteral')
    .map((n) => String(n.value))
    .join('');
}
