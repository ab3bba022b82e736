/**
 * Conditions (`if`): jexl expressions over the record as currently stored, compiled once and
 * cached. The same cache serves write conditions at apply time and list filters at read time.
 *
 * No jexl functions or transforms are registered, so evaluation depends only on the record:
 * deterministic and side-effect free on every replica.
 */
import jexlModule from "jexl";
import type { StoredRecord } from "../store/mod.ts";

interface AstNode {
  type: string;
  operator?: string;
  value?: unknown;
  left?: AstNode;
  right?: AstNode;
  test?: AstNode;
  consequent?: AstNode;
  alternate?: AstNode;
  subject?: AstNode;
  expr?: AstNode;
  from?: AstNode;
  args?: AstNode[];
  [key: string]: unknown;
}

interface CompiledExpression {
  evalSync(context: Record<string, unknown>): unknown;
  _getAst(): AstNode | null;
}

interface JexlInstance {
  compile(expression: string): CompiledExpression;
}

// jexl ships CommonJS; its default export carries the Jexl class.
const JexlClass = (jexlModule as unknown as { Jexl: new () => JexlInstance }).Jexl;

/** An `if` that cannot be accepted: bad syntax, a function call, or not a boolean. */
export class ConditionError extends Error {
  /** Stable code. */
  readonly code = "invalid_condition";
  constructor(message: string) {
    super(message);
    this.name = "ConditionError";
  }
}

const COMPARISONS = new Set(["==", "!=", "<", "<=", ">", ">=", "in"]);

/** Whether an AST node always yields a boolean. */
function yieldsBoolean(node: AstNode | undefined): boolean {
  if (node === undefined) return false;
  switch (node.type) {
    case "Literal":
      return typeof node.value === "boolean";
    case "UnaryExpression":
      return node.operator === "!";
    case "BinaryExpression":
      if (COMPARISONS.has(node.operator ?? "")) return true;
      if (node.operator === "&&" || node.operator === "||") {
        return yieldsBoolean(node.left) && yieldsBoolean(node.right);
      }
      return false;
    case "ConditionalExpression":
      return yieldsBoolean(node.consequent) && yieldsBoolean(node.alternate);
    default:
      return false;
  }
}

/** The first function or transform call in the tree, if any. */
function findCall(node: unknown, depth = 0): string | null {
  if (depth > 256 || typeof node !== "object" || node === null) return null;
  const n = node as AstNode;
  if (n.type === "FunctionCall") return String(n.name);
  for (const key of Object.keys(n)) {
    const child = n[key];
    if (Array.isArray(child)) {
      for (const c of child) {
        const found = findCall(c, depth + 1);
        if (found !== null) return found;
      }
    } else if (typeof child === "object" && child !== null) {
      const found = findCall(child, depth + 1);
      if (found !== null) return found;
    }
  }
  return null;
}

/** The result of evaluating a condition: `error` covers throws and non-boolean results. */
export type Verdict = "true" | "false" | "error";

/** A bounded cache of compiled conditions. */
export class ConditionCache {
  private readonly jexl = new JexlClass();
  private readonly cache = new Map<string, CompiledExpression | ConditionError>();

  constructor(private readonly entriesMax: number) {}

  /** Compiles (or fetches) `expression`; throws {@linkcode ConditionError} if it is unusable. */
  compile(expression: string): CompiledExpression {
    let compiled = this.cache.get(expression);
    if (compiled === undefined) {
      compiled = this.compileUncached(expression);
      // Evict the oldest entry: bounded memory whatever clients send.
      if (this.cache.size >= this.entriesMax) {
        this.cache.delete(this.cache.keys().next().value!);
      }
      this.cache.set(expression, compiled);
    }
    if (compiled instanceof ConditionError) throw compiled;
    return compiled;
  }

  private compileUncached(expression: string): CompiledExpression | ConditionError {
    let compiled: CompiledExpression;
    try {
      compiled = this.jexl.compile(expression);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return new ConditionError(`Cannot parse condition: ${reason}`);
    }
    const ast: AstNode | null = compiled._getAst();
    // jexl compiles an empty or unfinished expression ("", "((") to a null tree instead of throwing.
    if (ast === null) {
      return new ConditionError("Cannot parse condition: it is empty or incomplete");
    }
    const call = findCall(ast);
    if (call !== null) {
      return new ConditionError(
        `Cannot use condition: functions and transforms are not available (${call})`,
      );
    }
    if (!yieldsBoolean(ast)) {
      return new ConditionError(
        "Cannot use condition: it must evaluate to a boolean (a comparison, !, &&, ||, or true/false)",
      );
    }
    return compiled;
  }

  /**
   * Evaluates `expression` against `record` (null when absent). Anything but `true` or `false` —
   * including a thrown error — is `"error"`, which callers treat as false.
   */
  evaluate(expression: string, record: StoredRecord | null): Verdict {
    let result: unknown;
    try {
      const compiled = this.compile(expression);
      result = compiled.evalSync(
        record === null ? ABSENT : {
          pk: record.pk,
          sk: record.sk,
          data: JSON.parse(record.dataJson),
          _created_at: record.createdAt,
          _updated_at: record.updatedAt,
          _version: record.version,
          null: null,
        },
      );
    } catch {
      return "error";
    }
    if (result === true) return "true";
    if (result === false) return "false";
    return "error";
  }
}

// jexl has no null literal: `null` is an identifier, so the context defines it.
const ABSENT = Object.freeze({
  pk: null,
  sk: null,
  data: null,
  _created_at: null,
  _updated_at: null,
  _version: null,
  null: null,
});
