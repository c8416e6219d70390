// comlink ships its Node adapter as an .mjs file without matching type resolution under
// NodeNext; this shim types the one function we use.
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';

  interface NodeEndpoint {
    // biome-ignore lint/suspicious/noExplicitAny: mirrors Node's MessagePort/Worker signatures.
    postMessage(message: any, transfer?: any): void;
    // biome-ignore lint/suspicious/noExplicitAny: listener signatures differ between Worker and MessagePort.
    on(type: string, listener: (value: any) => void): unknown;
    // biome-ignore lint/suspicious/noExplicitAny: as above.
    off(type: string, listener: (value: any) => void): unknown;
    start?: () => void;
  }
  export default function nodeEndpoint(nep: NodeEndpoint): Endpoint;
}
