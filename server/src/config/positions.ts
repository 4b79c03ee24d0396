/** Source positions of nodes in a parsed YAML document, by path. */
import { isMap, isNode, isPair, isScalar, type Document, type LineCounter, type Node } from 'yaml';

export interface Position {
  line: number;
  column: number;
}

export class YamlPositions {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** Start of the node at `segments` (the value; the whole document for []), or null when it is absent. */
  valueAt(segments: readonly (string | number)[]): Position | null {
    const node = segments.length === 0 ? this.doc.contents : this.doc.getIn(segments, true);
    return isNode(node) ? this.at(node) : null;
  }

  /** Start of the key `key` inside the mapping at `parent`, or null. */
  keyAt(parent: readonly (string | number)[], key: string): Position | null {
    const map = parent.length === 0 ? this.doc.contents : this.doc.getIn(parent, true);
    if (!isMap(map)) return null;
    for (const pair of map.items) {
      if (!isPair(pair)) continue;
      const k = pair.key;
      if (isScalar(k) && String(k.value) === key) return this.at(k);
    }
    return null;
  }

  /** The nearest existing node on the way to `segments` (value first, then its ancestors). */
  nearest(segments: readonly (string | number)[]): Position {
    for (let n = segments.length; n >= 0; n--) {
      const found = this.valueAt(segments.slice(0, n));
      if (found) return found;
    }
    return { line: 1, column: 1 };
  }

  private at(node: Node): Position | null {
    const range = node.range;
    if (!range) return null;
    const { line, col } = this.lines.linePos(range[0]);
    return { line, column: col };
  }
}

/** `lora.target_modules[1]` -> ['lora', 'target_modules', 1]. */
export function fieldSegments(field: string): (string | number)[] {
  const segments: (string | number)[] = [];
  for (const part of field.split('.')) {
    const match = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!match) return [];
    if (match[1]) segments.push(match[1]);
    for (const index of match[2]!.matchAll(/\[(\d+)\]/g)) segments.push(Number(index[1]));
  }
  return segments;
}
