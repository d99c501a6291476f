import { registerRootComponent } from "expo";
import { Text } from "react-native";

registerRootComponent(() => <Text>Built by buildfarm</Text>);
