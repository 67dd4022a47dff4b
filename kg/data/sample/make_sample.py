"""Generate the hand-written C3KG-format sample shipped with tiktalk-kg.

All content below was written by hand for this project (short-video comment
chat themes: food, pets, music, games, travel, plus a few everyday topics).
Nothing is copied from the real C3KG / ATOMIC-2020 releases; only the file
layouts follow the real release formats.

Run:  python kg/data/sample/make_sample.py
Output (next to this script):
    head_shortSentence.csv  head_phrase.csv  ATOMIC_Chinese.tsv  flow_edges.tsv

Compact notation used in the literals below (parsed by this script):
    heads:   "English head | 中文 | rel:tail/tail; rel:tail"
    flows:   "源 > 目标1 目标2"   (targets separated by spaces)
    emotion: "type 源 > 目标1 目标2"
The output is fully deterministic (weights from random.Random(0)).
"""

import os
import random
from collections import OrderedDict

OUT_DIR = os.path.dirname(os.path.abspath(__file__))

EVENT_RELATIONS = ("xNeed", "xAttr", "xReact", "xEffect", "xWant", "xIntent",
                   "oEffect", "oWant", "oReact", "isBefore", "isAfter",
                   "HasSubEvent")
PHRASE_RELATIONS = ("ObjectUse", "AtLocation", "HasProperty", "CapableOf",
                    "MadeUpOf", "Desires", "NotDesires")

# ---------------------------------------------------------------------------
# Event heads (head_shortSentence.csv) with their ATOMIC-style triples
# ---------------------------------------------------------------------------
EVENT_HEADS = {
    "food": """
PersonX buys pizza | 有人买披萨 | xIntent:填饱肚子; xNeed:带钱; xReact:满足; xWant:趁热吃; xEffect:吃饱了
PersonX cooks a pot of braised pork | 有人做了一锅红烧肉 | xNeed:去超市/买五花肉; xAttr:会做饭的; xReact:自豪; oReact:羡慕; oWant:尝一口; xWant:拍照发视频
PersonX drools | 有人流口水了 | xReact:嘴馋; xWant:马上吃到; isAfter:看到美食视频; xAttr:贪吃的
PersonX eats hot pot with PersonY | 有人和别人一起吃火锅 | xIntent:和朋友聚聚; xReact:开心/满足; oReact:开心; xNeed:约好朋友; xEffect:吃撑了; xWant:喝冰饮料
PersonX orders takeout | 有人点外卖 | xIntent:填饱肚子; xNeed:打开外卖软件; xReact:期待; xAttr:懒的; xWant:等外卖到
PersonX waits for the takeout | 有人等外卖 | xReact:着急; xWant:快点吃上; isAfter:点外卖; xEffect:饿得不行
PersonX learns to cook from a video | 有人跟着视频学做菜 | xIntent:学会做饭; xNeed:准备食材; xReact:好奇; xEffect:学会一道菜; xAttr:好学的
PersonX burns the food | 有人把菜烧糊了 | xReact:失望/尴尬; xEffect:重新做; oReact:好笑; xAttr:粗心的
PersonX tries street food | 有人尝试路边小吃 | xIntent:尝尝新口味; xReact:兴奋; xNeed:去夜市; xWant:再来一份; xAttr:爱吃的
PersonX eats spicy noodles | 有人吃辣面 | xReact:过瘾; xEffect:辣得流眼泪; xWant:喝冰饮料; xNeed:买辣面
PersonX bakes a cake | 有人烤蛋糕 | xNeed:准备面粉/预热烤箱; xIntent:给家人惊喜; xReact:自豪; oReact:感动; oWant:尝一口
PersonX makes a birthday cake for PersonY | 有人给别人做生日蛋糕 | xIntent:给别人过生日; xNeed:买奶油; xReact:期待; oReact:感动; oEffect:吃到蛋糕; xAttr:贴心的
PersonX goes on a diet | 有人开始减肥 | xIntent:变瘦; xReact:坚定; xWant:少吃一点; xEffect:瘦了两斤; xAttr:自律的
PersonX eats late-night snacks | 有人吃夜宵 | xReact:满足; xEffect:长胖了; isAfter:加班到很晚; xWant:睡觉; xIntent:解馋
PersonX drinks bubble tea | 有人喝奶茶 | xReact:开心; xNeed:排队买奶茶; xEffect:长胖了; xIntent:解馋
PersonX queues for a famous restaurant | 有人排队吃网红店 | xReact:期待/无聊; xNeed:早点出门; xWant:拍照打卡; xEffect:等了很久
PersonX finds the famous restaurant disappointing | 有人觉得网红店很难吃 | xReact:失望; xWant:给差评; isAfter:排队吃网红店; oReact:同情
PersonX treats PersonY to dinner | 有人请别人吃饭 | xIntent:表示感谢; xNeed:订餐厅; xAttr:大方的; oReact:感激; oWant:下次回请; xEffect:花了不少钱
PersonX cooks for PersonY | 有人给别人做饭 | xIntent:照顾别人; xAttr:贴心的; oReact:感动; oEffect:吃饱了; xNeed:买菜
PersonX buys groceries | 有人去菜市场买菜 | xIntent:准备做饭; xNeed:带购物袋; xEffect:买了很多菜; xWant:回家做饭; xReact:放松
PersonX makes dumplings | 有人包饺子 | xNeed:和面/调馅; xReact:开心; HasSubEvent:擀饺子皮; xWant:下饺子; xIntent:过年
PersonX eats PersonY's snacks secretly | 有人偷吃别人的零食 | xAttr:嘴馋的; xReact:心虚; oReact:生气; oWant:让他赔; xIntent:解馋
PersonX shares snacks with PersonY | 有人把零食分给别人 | xAttr:大方的; xReact:开心; oReact:开心/感激; oEffect:吃到零食; xIntent:和别人分享
PersonX watches a mukbang video | 有人看吃播 | xReact:嘴馋; xEffect:肚子饿了; xWant:点外卖; xIntent:解闷
PersonX eats too much | 有人吃撑了 | xReact:难受/后悔; xWant:出去散步; isAfter:吃自助餐; xEffect:肚子胀
PersonX goes to a buffet | 有人去吃自助餐 | xIntent:吃个够; xNeed:饿着肚子; xReact:兴奋; isBefore:吃撑了; xWant:吃回本
PersonX makes coffee | 有人煮咖啡 | xIntent:提神; xNeed:买咖啡豆; xReact:放松; xEffect:精神了
PersonX tries a new recipe | 有人尝试新菜谱 | xIntent:尝尝新口味; xReact:好奇/紧张; xNeed:准备食材; xEffect:做砸了; xAttr:爱折腾的
PersonX eats durian | 有人吃榴莲 | xReact:满足; oReact:嫌弃; oWant:离他远点; xNeed:买榴莲; xAttr:口味独特的
PersonX grills skewers | 有人烤串 | xNeed:生火/买肉串; xReact:开心; xWant:配啤酒; oWant:尝一口; HasSubEvent:撒孜然
PersonX drinks beer with PersonY | 有人和别人喝啤酒 | xIntent:放松一下; xReact:痛快; oReact:开心; xEffect:喝醉了; xWant:聊聊天
PersonX gets food poisoning | 有人吃坏肚子了 | xReact:难受; xWant:去医院/吃药; isAfter:吃了不干净的东西; oReact:心疼
PersonX cooks instant noodles | 有人煮泡面 | xNeed:烧开水; xIntent:填饱肚子; xReact:满足; xAttr:懒的; xWant:加个鸡蛋
PersonX posts a food video | 有人发美食视频 | xIntent:分享美食; xNeed:拍好视频; xWant:收到点赞; oReact:嘴馋; oWant:要教程
PersonX asks PersonY for the recipe | 有人问别人要菜谱 | xIntent:学会做饭; xReact:好奇; oEffect:分享菜谱; oReact:自豪; xWant:回家试试
PersonX eats PersonY's cooking | 有人吃别人做的菜 | xReact:满足; xWant:再来一碗; oReact:开心; oWant:听夸奖; xEffect:吃饱了
PersonX peels crayfish | 有人剥小龙虾 | xReact:过瘾; xNeed:戴手套; xEffect:手上都是油; xWant:配啤酒
PersonX makes ___ for breakfast | 有人做早餐 | xIntent:吃得健康; xNeed:早起; xReact:满足; xEffect:精神了; xAttr:勤快的
PersonX skips a meal | 有人不吃饭 | xReact:饥饿; xEffect:饿得不行; xIntent:变瘦/赶时间; oReact:担心; oWant:劝他吃饭
PersonX eats at PersonY's house | 有人在别人家蹭饭 | xIntent:省钱/吃顿好的; xReact:开心; oReact:无奈; xAttr:脸皮厚的; xWant:帮忙洗碗
""",
    "pets": """
PersonX feeds PersonY's cat | 有人喂别人的猫 | xNeed:买猫粮; xIntent:照顾猫; xAttr:有爱心的; oReact:感激; xReact:开心
PersonX adopts a cat | 有人领养了一只猫 | xIntent:有个伴; xNeed:准备猫砂; xReact:兴奋/开心; xEffect:多了个家人; xWant:给猫取名字; xAttr:有爱心的
PersonX adopts a dog | 有人领养了一只狗 | xIntent:有个伴; xNeed:去救助站; xReact:开心; xWant:带狗散步; xAttr:善良的
PersonX walks the dog | 有人遛狗 | xNeed:拴好狗绳; xReact:放松; xEffect:走了很多路; HasSubEvent:捡狗屎; xIntent:让狗运动
PersonX pets a cat | 有人撸猫 | xReact:放松/治愈; xIntent:解压; xEffect:身上全是猫毛; xNeed:找到一只猫
PersonX bathes the dog | 有人给狗洗澡 | xNeed:准备沐浴露; xReact:很累; xEffect:浑身湿透; xWant:用吹风机吹干; isBefore:给狗吹毛
PersonX takes the cat to the vet | 有人带猫去看病 | xReact:担心/心疼; xNeed:装进猫包; xIntent:治好猫; xEffect:花了不少钱; isAfter:猫不吃东西
PersonX's cat knocks a cup over | 有人的猫把杯子打翻了 | xReact:无奈/好笑; xWant:收拾干净; oReact:好笑; xEffect:地上都是水
PersonX trains the dog | 有人训练狗狗 | xIntent:让狗听话; xNeed:准备零食; xReact:期待/自豪; xEffect:狗学会握手; xAttr:有耐心的
PersonX films the cat | 有人给猫拍视频 | xIntent:分享可爱; xNeed:拿出手机; xWant:发到网上; oReact:被萌到; xReact:开心
PersonX's dog gets lost | 有人的狗走丢了 | xReact:着急/难过; xWant:贴寻狗启事/到处找; oWant:帮忙转发; oReact:同情
PersonX finds the lost dog | 有人找到了走丢的狗 | xReact:激动/放松; isAfter:到处找; xWant:抱着不放; oReact:感动
PersonX's pet passes away | 有人的宠物去世了 | xReact:难过/伤心; oReact:心疼; oWant:安慰他; xWant:好好安葬
PersonX buys cat food | 有人买猫粮 | xIntent:喂猫; xNeed:挑好牌子; xReact:满足; xEffect:花了不少钱; isBefore:喂猫
PersonX plays with the kitten | 有人逗小猫玩 | xReact:开心; xNeed:买逗猫棒; xIntent:陪猫玩; xEffect:被猫抓了
PersonX gets scratched by the cat | 有人被猫抓了 | xReact:很疼/生气; xWant:消毒; xNeed:惹毛了猫; oReact:好笑
PersonX cleans the litter box | 有人铲猫砂 | xNeed:戴口罩; xReact:嫌弃/无奈; xAttr:勤快的; xIntent:保持卫生
PersonX raises a hamster | 有人养仓鼠 | xNeed:买笼子; xReact:开心; xIntent:有个伴; xWant:看它跑轮子
PersonX's dog chews up the sofa | 有人的狗把沙发咬坏了 | xReact:生气/无奈; xWant:教训狗; xEffect:要买新沙发; oReact:好笑
PersonX takes the dog to the park | 有人带狗去公园 | xIntent:让狗运动; xReact:开心; xNeed:拴好狗绳; xWant:和别的狗玩; oReact:羡慕
PersonX dresses up the pet | 有人给宠物穿衣服 | xIntent:拍可爱照片; xReact:开心; xNeed:买宠物衣服; oReact:被萌到
PersonX's cat sleeps on the keyboard | 有人的猫趴在键盘上睡觉 | xReact:无奈/好笑; xWant:把猫抱走; xEffect:没法工作; oReact:被萌到
PersonX takes in a stray cat | 有人收养流浪猫 | xAttr:善良的/有爱心的; xIntent:救助流浪猫; xNeed:带去检查; xReact:心疼; oReact:感动
PersonX feeds stray dogs | 有人喂流浪狗 | xAttr:善良的; xNeed:带狗粮; xReact:心疼; oReact:感动; xIntent:让它吃饱
PersonX gives the dog a treat | 有人给狗喂零食 | xIntent:奖励狗; xReact:开心; xNeed:准备零食; isBefore:狗摇尾巴
PersonX is ignored by PersonX's own cat | 有人被自己的猫嫌弃 | xReact:伤心/好笑; xWant:拿零食讨好; oReact:好笑; xEffect:没面子
PersonX gets a second cat | 有人又养了一只猫 | xIntent:给猫找个伴; xNeed:准备猫砂; xReact:兴奋; xEffect:家里更热闹了
PersonX takes the puppy for vaccines | 有人带小狗打疫苗 | xIntent:保护狗狗; xNeed:预约医院; xReact:紧张; xEffect:花了不少钱
PersonX is allergic to cats | 有人对猫过敏 | xReact:难过; xEffect:一直打喷嚏; xWant:吃药; oReact:同情
PersonX trims the cat's claws | 有人给猫剪指甲 | xNeed:按住猫; xReact:紧张; xEffect:被猫抓了; xIntent:防止被抓
PersonX sees a cute dog on the street | 有人在街上看到一只可爱的狗 | xReact:开心; xWant:摸一摸; xEffect:停下脚步; HasSubEvent:拍照
PersonX leaves the pet home alone | 有人把宠物独自留在家 | xReact:担心/愧疚; xIntent:去上班; xWant:早点回家; xNeed:留够猫粮
PersonX comes home to the dog waiting at the door | 有人回家看到狗狗在门口等 | xReact:感动/开心; isAfter:下班回家; xWant:抱抱狗狗; oReact:开心
PersonX raises a parrot | 有人养鹦鹉 | xWant:教它说话; xReact:好奇; xNeed:买鸟笼; xEffect:家里很吵
PersonX teaches the parrot to talk | 有人教鹦鹉说话 | xIntent:逗大家开心; xReact:期待; xEffect:鹦鹉会说你好; oReact:惊讶; xAttr:有耐心的
PersonX's cat gives birth to kittens | 有人的猫生了小猫 | xReact:兴奋/紧张; xWant:给小猫找领养; oWant:领养一只; xNeed:准备猫窝
PersonX raises goldfish | 有人养金鱼 | xNeed:买鱼缸; xReact:放松; xIntent:养点活物; xEffect:要经常换水
PersonX brushes the dog's fur | 有人给狗梳毛 | xNeed:买梳子; xReact:放松; xEffect:掉了一地毛; xIntent:让狗舒服
PersonX's dog barks at night | 有人的狗半夜叫 | xReact:烦躁; oReact:生气; oWant:去投诉; xWant:让狗安静
PersonX watches cat videos | 有人刷猫咪视频 | xReact:治愈/开心; xWant:也想养猫; xIntent:解压; xEffect:刷到半夜
""",
    "music": """
PersonX goes to ___ concert | 有人去听演唱会 | xNeed:抢到门票; xIntent:见偶像; xReact:兴奋/激动; xWant:跟着合唱; HasSubEvent:挥荧光棒
PersonX gets concert tickets | 有人抢到演唱会门票 | xNeed:提前定闹钟; xReact:激动; xWant:发朋友圈; oReact:羡慕; isBefore:去听演唱会
PersonX fails to get tickets | 有人没抢到票 | xReact:失望/难过; xWant:找黄牛; oReact:同情; isAfter:手慢了
PersonX learns guitar | 有人学吉他 | xNeed:买吉他; xIntent:学会弹琴; xReact:期待; xEffect:手指磨出茧; xAttr:有毅力的
PersonX plays the piano | 有人弹钢琴 | xNeed:练好几年; xReact:放松; oReact:佩服; oWant:多听几首; xAttr:有才华的
PersonX sings a song for PersonY | 有人给别人唱歌 | xIntent:表白/逗别人开心; xReact:紧张; oReact:感动; oWant:再唱一首; xNeed:练好这首歌
PersonX goes to karaoke with PersonY | 有人和别人去唱K | xIntent:放松一下; xReact:开心; xNeed:订包间; xEffect:嗓子哑了; oReact:开心
PersonX listens to music on the way to work | 有人上班路上听歌 | xIntent:打发时间; xNeed:戴上耳机; xReact:放松; xEffect:心情变好
PersonX listens to a sad song | 有人听伤感的歌 | xReact:难过/感动; isAfter:失恋了; xEffect:哭了; xWant:一个人静静
PersonX covers a song | 有人翻唱一首歌 | xIntent:展示自己; xNeed:练好这首歌; xWant:收到点赞; oReact:惊艳; xReact:紧张
PersonX posts a singing video | 有人发唱歌视频 | xIntent:展示自己; xWant:收到点赞; oReact:惊艳; oWant:求原唱; xReact:期待
PersonX sings off-key | 有人唱歌跑调 | xReact:尴尬; oReact:好笑; xAttr:五音不全的; xWant:多练练
PersonX writes a song | 有人自己写歌 | xIntent:表达心情; xNeed:学乐理; xReact:自豪; xAttr:有才华的; oWant:听一听
PersonX joins a band | 有人加入乐队 | xIntent:追求梦想; xNeed:会一门乐器; xReact:兴奋; xWant:一起排练; xEffect:认识新朋友
PersonX performs on stage | 有人上台表演 | xNeed:排练很久; xReact:紧张/兴奋; oReact:佩服; xEffect:收获掌声; HasSubEvent:鞠躬
PersonX can't get a song out of PersonX's head | 有人被一首歌洗脑了 | xReact:无奈/上头; xEffect:一直哼; isAfter:刷到热门歌曲; xWant:单曲循环
PersonX plays a song on repeat | 有人单曲循环一首歌 | xReact:上头; xIntent:听个够; xEffect:听腻了; isAfter:听到好听的歌
PersonX shares a song with PersonY | 有人给别人分享一首歌 | xIntent:和别人分享; xReact:期待; oReact:喜欢; oWant:加进歌单; xAttr:热情的
PersonX learns to play the drums | 有人学打鼓 | xNeed:买鼓; xReact:兴奋; xEffect:吵到邻居; oReact:烦躁; xIntent:释放压力
PersonX practices the violin | 有人练小提琴 | xNeed:买小提琴; xReact:很累; xEffect:水平进步了; oReact:烦躁; xAttr:有毅力的
PersonX meets PersonX's idol | 有人见到了偶像 | xReact:激动/感动; xWant:要签名/合影; isAfter:去听演唱会; oReact:羡慕
PersonX gets an autograph | 有人拿到签名 | xReact:激动; xWant:好好收藏; xNeed:排队; oReact:羡慕
PersonX makes a playlist | 有人做歌单 | xIntent:整理喜欢的歌; xReact:满足; xWant:分享给朋友; xEffect:歌单越来越长
PersonX sings in the shower | 有人在浴室唱歌 | xReact:开心/放松; xAttr:开朗的; oReact:好笑; xIntent:放松一下
PersonX goes to a music festival | 有人去音乐节 | xNeed:买门票; xReact:兴奋; HasSubEvent:跟着蹦; xWant:看喜欢的乐队; xEffect:累坏了
PersonX dances to the music | 有人跟着音乐跳舞 | xReact:开心; xIntent:放松一下; xEffect:出了一身汗; oWant:一起跳; xNeed:学舞步
PersonX learns a trending dance | 有人学热门舞蹈 | xNeed:看教程; xIntent:拍视频; xReact:兴奋; xEffect:学会了; xAttr:活泼的
PersonX hears an old song | 有人听到一首老歌 | xReact:感动/怀念; xEffect:想起以前; xWant:分享给朋友; isAfter:打开收音机
PersonX buys a pair of headphones | 有人买了一副耳机 | xIntent:听歌更爽; xNeed:比较价格; xReact:满足; xWant:马上试听; xEffect:花了不少钱
PersonX plays the ukulele | 有人弹尤克里里 | xReact:开心; xAttr:文艺的; oReact:羡慕; xNeed:学几个和弦
PersonX busks on the street | 有人在街头卖唱 | xIntent:赚点钱/锻炼胆量; xReact:紧张; oReact:佩服; oEffect:驻足听歌; xNeed:准备音箱
PersonX sings a lullaby to the baby | 有人给宝宝唱摇篮曲 | xIntent:哄宝宝睡觉; xReact:幸福; oEffect:睡着了; xAttr:温柔的
PersonX loses PersonX's voice | 有人嗓子哑了 | xReact:难受; isAfter:唱了一晚上; xWant:喝润喉茶; xEffect:说不出话
PersonX plays music loudly | 有人把音乐开得很大声 | xReact:痛快; oReact:烦躁/生气; oWant:去投诉; xAttr:不顾别人的
PersonX praises PersonY's singing | 有人夸别人唱得好听 | xIntent:鼓励别人; xAttr:友善的; oReact:开心; oWant:继续唱; xReact:开心
PersonX recommends a song to PersonY | 有人给别人推荐歌曲 | xIntent:和别人分享; oReact:好奇; oWant:去听一听; xWant:知道别人的感受
PersonX gets stage fright | 有人上台前很紧张 | xReact:紧张/害怕; xWant:深呼吸; isBefore:上台表演; oWant:给他加油
PersonX wins a singing contest | 有人赢了唱歌比赛 | xReact:自豪/激动; xNeed:练习很久; oReact:佩服; xEffect:获得奖杯; xWant:感谢家人
PersonX listens to music while studying | 有人边听歌边学习 | xIntent:集中注意力; xNeed:戴上耳机; xReact:放松; xEffect:效率变高
PersonX learns to read sheet music | 有人学看乐谱 | xNeed:买教材; xReact:头疼; xIntent:学会弹琴; xEffect:学会了; xAttr:有毅力的
""",
    "games": """
PersonX plays ___ all night | 有人通宵打游戏 | xIntent:打上段位; xReact:兴奋; xEffect:黑眼圈/第二天很困; xAttr:沉迷游戏的; oReact:担心
PersonX wins a round | 有人赢了一局游戏 | xReact:开心/自豪; xWant:再来一局; oReact:羡慕; isAfter:认真打; xEffect:段位上升
PersonX loses a round | 有人输了一局游戏 | xReact:生气/失望; xWant:再来一局; xEffect:段位下降; oReact:好笑
PersonX plays games with PersonY | 有人和别人一起打游戏 | xIntent:和朋友聚聚; xReact:开心; oReact:开心; xNeed:约好时间; xWant:开语音
PersonX buys a new game | 有人买了一款新游戏 | xNeed:攒钱; xIntent:体验新游戏; xReact:期待/兴奋; xWant:马上开玩; xEffect:花了不少钱
PersonX draws a rare character | 有人抽到稀有角色 | xReact:兴奋/激动; xWant:晒截图; oReact:羡慕; isAfter:攒了很多抽卡券
PersonX gets nothing from the gacha | 有人抽卡一无所获 | xReact:失望/心疼; xEffect:钱白花了; oReact:同情/好笑; xWant:不玩了
PersonX spends money in the game | 有人在游戏里充钱 | xIntent:变强; xReact:心疼; xEffect:花了不少钱; xAttr:舍得花钱的; oReact:惊讶
PersonX is carried by PersonY | 有人被别人带飞 | xReact:开心/感激; oReact:自豪; xWant:抱大腿; xEffect:赢了比赛
PersonX gets a terrible teammate | 有人遇到猪队友 | xReact:生气/无奈; xWant:举报他; xEffect:输了比赛; oReact:同情
PersonX beats a hard level | 有人打通了一个难关 | xReact:自豪/激动; isAfter:失败了很多次; xWant:挑战下一关; xNeed:反复练习
PersonX gets stuck on a level | 有人卡关了 | xReact:烦躁; xWant:查攻略; xNeed:玩到一半; oWant:教他怎么过
PersonX watches a game stream | 有人看游戏直播 | xIntent:学技术/打发时间; xReact:开心; xWant:刷礼物; xNeed:打开直播软件
PersonX streams games | 有人直播打游戏 | xIntent:赚点钱; xNeed:买摄像头; xReact:紧张; oWant:刷礼物; xEffect:涨粉了
PersonX plays a horror game | 有人玩恐怖游戏 | xReact:害怕/紧张; xWant:开着灯玩; xEffect:吓了一跳; oReact:好笑
PersonX ranks up | 有人上分了 | xReact:兴奋/自豪; isAfter:连胜了好几局; xWant:晒截图; oReact:羡慕
PersonX's game account gets hacked | 有人的游戏账号被盗了 | xReact:生气/着急; xWant:找客服; xEffect:装备都没了; oReact:同情
PersonX buys a game console | 有人买了游戏机 | xNeed:攒钱; xReact:兴奋; xWant:买几款游戏; xIntent:在家玩游戏; xEffect:花了不少钱
PersonX plays games on the phone | 有人用手机玩游戏 | xIntent:打发时间; xReact:放松; xEffect:手机没电了; xNeed:下载游戏
PersonX's parents catch PersonX gaming | 有人打游戏被爸妈发现了 | xReact:害怕/紧张; isAfter:偷偷打游戏; oReact:生气; oWant:没收手机
PersonX plays a childhood game | 有人玩小时候的游戏 | xReact:怀念/开心; xEffect:想起以前; xIntent:找回童年; xWant:分享给朋友
PersonX builds a house in Minecraft | 有人在我的世界里盖房子 | xNeed:收集材料; xReact:满足; xAttr:有创意的; xWant:晒截图; oReact:佩服
PersonX teaches PersonY to play | 有人教别人玩游戏 | xAttr:有耐心的; xIntent:带别人入坑; oReact:感激; oEffect:学会了; xReact:无奈
PersonX gets a pentakill | 有人拿了五杀 | xReact:激动; xWant:录屏保存; oReact:佩服; xEffect:赢了比赛
PersonX smashes the controller in anger | 有人气得摔手柄 | xReact:生气; isAfter:输了好几局; xEffect:手柄摔坏了; oReact:好笑; xAttr:暴躁的
PersonX finishes the game | 有人通关了游戏 | xReact:满足/感动; isAfter:玩了好几个月; xWant:玩二周目; oReact:佩服
PersonX waits for a game update | 有人等游戏更新 | xReact:着急/期待; xWant:第一时间玩; xEffect:等了很久; xIntent:玩新内容
PersonX teams up with strangers online | 有人和网友组队 | xIntent:找人一起玩; xReact:紧张; xEffect:认识新朋友; oReact:开心; xWant:加好友
PersonX plays cards | 有人打牌 | xNeed:凑齐人; xReact:开心; xIntent:打发时间; xEffect:输了钱
PersonX plays games during class | 有人上课偷偷打游戏 | xReact:紧张; xAttr:贪玩的; oReact:生气; xEffect:被老师发现
PersonX edits a gaming video | 有人剪游戏视频 | xIntent:分享精彩操作; xNeed:录屏; xWant:收到点赞; xReact:期待
PersonX plays games with a child | 有人陪孩子玩游戏 | xIntent:陪孩子; xReact:开心; oReact:开心; xEffect:故意输了; xAttr:温柔的
PersonX unlocks all achievements | 有人收集全部成就 | xReact:自豪; xNeed:玩很久; xAttr:有毅力的; oReact:佩服
PersonX gets dizzy playing VR | 有人玩VR游戏头晕 | xReact:难受; xWant:休息一下; isAfter:戴上VR眼镜; oReact:好笑
PersonX plays Switch with the family | 有人和家人玩Switch | xReact:开心; xIntent:陪家人; oReact:开心; xEffect:家里很热闹
PersonX insults PersonY in the game | 有人在游戏里骂别人 | xReact:生气; xAttr:暴躁的; oReact:生气/委屈; oWant:举报他; xEffect:被封号
PersonX's account gets banned | 有人的账号被封了 | xReact:后悔/生气; isAfter:在游戏里骂人; xWant:申诉; oReact:好笑
PersonX joins an esports team | 有人加入电竞战队 | xIntent:当职业选手; xNeed:技术很好; xReact:兴奋; xEffect:每天训练
PersonX watches an esports final | 有人看电竞决赛 | xReact:紧张/激动; xWant:支持的队赢; xNeed:买票/打开直播; HasSubEvent:欢呼
PersonX uninstalls the game | 有人卸载了游戏 | xIntent:戒掉游戏; xReact:轻松/不舍; isAfter:输了好几局; xEffect:时间多了
""",
    "travel": """
PersonX goes to the seaside | 有人去海边 | xIntent:看大海; xNeed:带防晒霜; xReact:放松/开心; xWant:踩水; xEffect:晒黑了
PersonX travels alone | 有人一个人旅行 | xIntent:散散心; xNeed:做攻略; xReact:自由; xAttr:勇敢的; oReact:担心; xEffect:认识新朋友
PersonX plans a trip | 有人做旅行攻略 | xIntent:玩得顺利; xNeed:查资料; xReact:期待; isBefore:出发旅行; xAttr:细心的
PersonX books a flight | 有人订机票 | xNeed:确定日期; xReact:期待; xWant:收拾行李; isBefore:出发旅行; xEffect:花了不少钱
PersonX packs the luggage | 有人收拾行李 | xNeed:列清单; xReact:兴奋; isBefore:出发旅行; xEffect:行李箱塞满了
PersonX misses the train | 有人没赶上火车 | xReact:着急/懊恼; xWant:改签; isAfter:起晚了; oReact:同情
PersonX climbs a mountain | 有人去爬山 | xNeed:穿运动鞋; xReact:很累/自豪; xEffect:腿酸; xWant:在山顶拍照; HasSubEvent:看日出
PersonX watches the sunrise on the summit | 有人在山顶看日出 | xReact:感动; xNeed:早起; xWant:拍照; isAfter:爬了一夜山
PersonX takes photos at a scenic spot | 有人在景点拍照 | xIntent:留个纪念; xNeed:带相机; xReact:开心; xWant:发朋友圈; oReact:羡慕
PersonX gets lost in a strange city | 有人在陌生城市迷路了 | xReact:着急/害怕; xWant:打开导航/问路; oWant:帮他指路; xEffect:走了很多路
PersonX tries local food on the trip | 有人在旅途中吃当地美食 | xIntent:尝尝新口味; xReact:满足; xWant:再来一份; xNeed:找到好店; oReact:嘴馋
PersonX goes camping | 有人去露营 | xNeed:搭帐篷/带睡袋; xReact:放松; xIntent:亲近自然; xWant:看星星; xEffect:被蚊子咬了
PersonX travels with PersonY | 有人和别人一起旅行 | xIntent:增进感情; xReact:开心; oReact:开心; xEffect:吵了一架; xNeed:约好时间
PersonX travels abroad | 有人出国旅游 | xNeed:办护照/办签证; xReact:兴奋; xIntent:见见世面; xEffect:花了不少钱; xWant:买纪念品
PersonX buys souvenirs | 有人买纪念品 | xIntent:留个纪念/送朋友; xReact:开心; oReact:感激; xEffect:花了不少钱
PersonX stays at a homestay | 有人住民宿 | xNeed:提前预订; xReact:放松; xEffect:认识了老板; xWant:给个好评
PersonX goes on a road trip | 有人自驾游 | xNeed:考驾照/加满油; xReact:自由; xIntent:想走就走; xEffect:累坏了; HasSubEvent:在服务区休息
PersonX takes a night train | 有人坐夜车 | xIntent:省住宿费; xReact:无聊; xEffect:没睡好; xWant:下车吃早饭
PersonX gets stuck in holiday crowds | 有人假期去景点人挤人 | xReact:烦躁/后悔; xWant:早点离开; oReact:同情/好笑; isAfter:假期出门
PersonX sees snow for the first time | 有人第一次看到雪 | xReact:兴奋/惊讶; xWant:堆雪人/打雪仗; oReact:好笑; xEffect:冻得发抖
PersonX visits an ancient town | 有人去古镇 | xIntent:感受历史; xReact:放松; xWant:拍照; xNeed:查路线; xEffect:走了很多路
PersonX travels to Chongqing | 有人去重庆旅游 | xWant:吃火锅; xIntent:吃辣; xReact:兴奋; xEffect:爬了很多坡; xNeed:做攻略
PersonX swims in the sea | 有人在海里游泳 | xNeed:会游泳; xReact:开心/害怕; xEffect:晒黑了; isAfter:去海边
PersonX loses PersonX's passport | 有人弄丢了护照 | xReact:着急/害怕; xWant:去大使馆; xEffect:行程被打乱; oReact:同情
PersonX comes back from a trip | 有人旅行回来了 | xReact:疲惫/满足; xWant:好好睡一觉; isAfter:玩了好几天; oWant:看照片; xEffect:整理照片
PersonX posts a travel vlog | 有人发旅行视频 | xIntent:分享风景; xWant:收到点赞; oReact:羡慕; oWant:也想去; xNeed:拍好视频
PersonX takes a cable car | 有人坐缆车 | xReact:害怕/兴奋; xNeed:买票; xEffect:看到全景; xIntent:省点力气
PersonX rides a horse on the grassland | 有人在草原骑马 | xReact:兴奋; xNeed:请教练; xEffect:腿疼; xWant:再骑一圈
PersonX visits a museum | 有人逛博物馆 | xIntent:长见识/感受历史; xReact:好奇; xNeed:预约门票; xEffect:学到知识
PersonX takes PersonX's parents on a trip | 有人带爸妈去旅游 | xIntent:尽孝心; xAttr:孝顺的; oReact:开心; xReact:开心/满足; xNeed:安排行程
PersonX gets sunburned | 有人被晒伤了 | xReact:难受/后悔; isAfter:没涂防晒霜; xWant:敷芦荟; oReact:心疼
PersonX goes to an amusement park | 有人去游乐园 | xReact:兴奋; xNeed:买票; HasSubEvent:坐过山车; xEffect:排了很久的队; xWant:看烟花
PersonX rides a roller coaster | 有人坐过山车 | xReact:害怕/刺激; xEffect:尖叫; oReact:好笑; xWant:再坐一次
PersonX goes hiking with PersonY | 有人和别人去徒步 | xIntent:锻炼身体; xNeed:穿运动鞋; xReact:很累; oReact:开心; xEffect:出了一身汗
PersonX visits PersonY's hometown | 有人去别人的家乡玩 | xIntent:了解别人; xReact:好奇; oReact:开心/自豪; oWant:当导游; xWant:吃当地美食
PersonX watches the stars | 有人看星星 | xReact:感动/放松; xNeed:找个没光的地方; xWant:许愿; isAfter:去露营
PersonX gets ripped off at a tourist spot | 有人在景区被坑了 | xReact:生气/后悔; xWant:投诉; oReact:同情; xEffect:花了不少钱
PersonX quits the job to travel | 有人辞职去旅行 | xIntent:放松一下/看看世界; xReact:自由; oReact:羡慕; xEffect:没有收入; xAttr:勇敢的
PersonX sends PersonY a postcard | 有人给别人寄明信片 | xIntent:分享旅途; xNeed:买明信片; oReact:惊喜; oEffect:收到明信片; xAttr:有心的
PersonX looks at the sea | 有人看海 | xReact:放松; xEffect:心情变好; xWant:吹吹海风; isAfter:去海边
""",
    "general": """
PersonX works overtime | 有人加班 | xReact:很累/烦躁; xNeed:有很多工作; xEffect:很晚才回家; xWant:吃夜宵; isBefore:打车回家
PersonX gets promoted | 有人升职了 | xReact:开心/自豪; isAfter:努力工作; xWant:请大家吃饭; oReact:羡慕; oWant:让他请客
PersonX finds a new job | 有人找到新工作 | xReact:兴奋/紧张; xNeed:投简历/面试; xWant:好好表现; oReact:开心
PersonX studies for an exam | 有人复习考试 | xIntent:考个好成绩; xReact:紧张; xNeed:买资料; xEffect:熬夜了; isBefore:去考试
PersonX passes the exam | 有人考试通过了 | xReact:开心/放松; isAfter:复习了很久; xWant:庆祝一下; oReact:开心
PersonX does badly on the exam | 有人考试没考好 | xReact:难过/失望; xWant:下次努力; oWant:安慰他; oReact:同情
PersonX gets caught in the rain | 有人被雨淋了 | xReact:倒霉/难受; isAfter:没带伞; xWant:回家洗澡; xEffect:感冒了
PersonX goes running | 有人去跑步 | xIntent:锻炼身体; xNeed:穿运动鞋; xReact:很累/痛快; xEffect:出了一身汗; xWant:喝水
PersonX plays basketball with PersonY | 有人和别人打篮球 | xIntent:锻炼身体; xReact:开心; oReact:开心; xEffect:出了一身汗; xNeed:约好朋友
PersonX watches a football match | 有人看足球比赛 | xReact:紧张/激动; xWant:支持的队赢; HasSubEvent:欢呼; xNeed:打开直播
PersonX stays up late | 有人熬夜 | xReact:犯困; xEffect:黑眼圈; xWant:补觉; isAfter:加班到很晚
PersonX catches a cold | 有人感冒了 | xReact:难受; isAfter:被雨淋了; xWant:吃药/多喝热水; oReact:心疼; oWant:提醒他多喝热水
PersonX basks in the sun | 有人晒太阳 | xReact:舒服/放松; xIntent:放松一下; xEffect:心情变好; xNeed:天气好
PersonX is stressed out by work | 有人工作压力很大 | xReact:焦虑/烦躁; xWant:放松一下/辞职; oWant:安慰他; isBefore:辞职去旅行
PersonX learns English | 有人学英语 | xIntent:出国旅游/找好工作; xNeed:背单词; xReact:头疼; xAttr:上进的
PersonX gets paid | 有人发工资了 | xReact:开心; xWant:买买买/请大家吃饭; xEffect:有钱了; isAfter:干了一个月
""",
}

# ---------------------------------------------------------------------------
# Phrase heads (head_phrase.csv) with physical-entity triples
# ---------------------------------------------------------------------------
PHRASE_HEADS = {
    "food": """
hot pot | 火锅 | AtLocation:火锅店; HasProperty:麻辣的; ObjectUse:朋友聚餐; MadeUpOf:锅底
beer | 啤酒 | AtLocation:冰箱; ObjectUse:解渴; HasProperty:冰爽的
pizza | 披萨 | AtLocation:披萨店; MadeUpOf:芝士/面饼; ObjectUse:填饱肚子
braised pork | 红烧肉 | HasProperty:肥而不腻; MadeUpOf:五花肉; ObjectUse:下饭
bubble tea | 奶茶 | AtLocation:奶茶店; MadeUpOf:珍珠/牛奶; HasProperty:甜的
cake | 蛋糕 | ObjectUse:过生日; MadeUpOf:奶油/面粉; AtLocation:蛋糕店
dumplings | 饺子 | ObjectUse:过年吃; MadeUpOf:饺子皮/肉馅; AtLocation:餐桌
takeout | 外卖 | ObjectUse:填饱肚子; CapableOf:送到家门口; AtLocation:外卖软件
noodles | 面条 | MadeUpOf:面粉; ObjectUse:当早餐; AtLocation:面馆
instant noodles | 泡面 | ObjectUse:填饱肚子; HasProperty:方便的; AtLocation:宿舍
crayfish | 小龙虾 | HasProperty:麻辣的; AtLocation:夜市; ObjectUse:配啤酒
skewers | 烤串 | AtLocation:夜市/烧烤摊; HasProperty:香的; ObjectUse:配啤酒
durian | 榴莲 | HasProperty:味道重的; AtLocation:水果店; CapableOf:让人上头
coffee | 咖啡 | ObjectUse:提神; MadeUpOf:咖啡豆; AtLocation:咖啡店
chili | 辣椒 | HasProperty:辣的; ObjectUse:调味; AtLocation:厨房
kitchen | 厨房 | ObjectUse:做饭; AtLocation:家里
wok | 炒锅 | ObjectUse:炒菜; AtLocation:厨房; MadeUpOf:铸铁
snacks | 零食 | ObjectUse:解馋; AtLocation:超市/抽屉
night market | 夜市 | ObjectUse:吃小吃; AtLocation:街上; HasProperty:热闹的
restaurant | 餐厅 | ObjectUse:吃饭; CapableOf:提供美食; AtLocation:商场
supermarket | 超市 | ObjectUse:买东西; AtLocation:小区附近
chef | 厨师 | CapableOf:做菜; Desires:客人吃得开心; AtLocation:厨房
""",
    "pets": """
cat | 猫 | Desires:被撸/吃小鱼干; NotDesires:洗澡; CapableOf:抓老鼠
dog | 狗 | Desires:出去玩; CapableOf:看家; NotDesires:被关着; AtLocation:院子
kitten | 小猫 | HasProperty:可爱的; Desires:喝奶; CapableOf:卖萌
puppy | 小狗 | HasProperty:可爱的; Desires:有人陪; CapableOf:摇尾巴
cat food | 猫粮 | ObjectUse:喂猫; AtLocation:宠物店; MadeUpOf:鱼肉
dog food | 狗粮 | ObjectUse:喂狗; AtLocation:宠物店
cat litter | 猫砂 | ObjectUse:给猫上厕所; AtLocation:猫砂盆
leash | 狗绳 | ObjectUse:遛狗; AtLocation:门口
cat teaser | 逗猫棒 | ObjectUse:逗猫玩; MadeUpOf:羽毛
pet shop | 宠物店 | ObjectUse:买宠物用品; AtLocation:街上
pet hospital | 宠物医院 | ObjectUse:给宠物看病; AtLocation:小区附近
hamster | 仓鼠 | CapableOf:跑轮子; Desires:囤粮食; AtLocation:笼子
parrot | 鹦鹉 | CapableOf:学说话; AtLocation:鸟笼; HasProperty:吵的
goldfish | 金鱼 | AtLocation:鱼缸; CapableOf:游泳; HasProperty:好养的
fish tank | 鱼缸 | ObjectUse:养鱼; MadeUpOf:玻璃
stray cat | 流浪猫 | Desires:有个家; NotDesires:被赶走; AtLocation:街上
pet clothes | 宠物衣服 | ObjectUse:给宠物保暖; AtLocation:宠物店
cat tree | 猫爬架 | ObjectUse:让猫爬; AtLocation:客厅
dried fish | 小鱼干 | ObjectUse:奖励猫; AtLocation:零食柜
""",
    "music": """
guitar | 吉他 | ObjectUse:弹唱; MadeUpOf:木头/琴弦; AtLocation:琴行
piano | 钢琴 | ObjectUse:弹曲子; AtLocation:琴房; HasProperty:贵的
drum kit | 架子鼓 | ObjectUse:打节奏; HasProperty:吵的; AtLocation:排练室
violin | 小提琴 | ObjectUse:拉曲子; MadeUpOf:琴弦; HasProperty:难学的
ukulele | 尤克里里 | HasProperty:好上手的; ObjectUse:弹唱
headphones | 耳机 | ObjectUse:听歌; AtLocation:包里
concert | 演唱会 | AtLocation:体育馆; HasProperty:热闹的; ObjectUse:见偶像
concert ticket | 演唱会门票 | ObjectUse:入场; HasProperty:难抢的
microphone | 麦克风 | ObjectUse:唱歌; AtLocation:舞台/KTV
stage | 舞台 | ObjectUse:表演; AtLocation:剧场
karaoke | KTV | ObjectUse:唱歌; AtLocation:商场; HasProperty:热闹的
idol | 偶像 | CapableOf:唱歌跳舞; Desires:粉丝支持; AtLocation:舞台
singer | 歌手 | CapableOf:唱歌; Desires:有人听; AtLocation:舞台
band | 乐队 | MadeUpOf:鼓手/吉他手; CapableOf:演出; AtLocation:音乐节
playlist | 歌单 | MadeUpOf:歌曲; ObjectUse:整理喜欢的歌; AtLocation:音乐软件
song | 歌曲 | ObjectUse:表达感情; AtLocation:音乐软件
music festival | 音乐节 | AtLocation:草地; HasProperty:热闹的; ObjectUse:看乐队演出
speaker | 音箱 | ObjectUse:放音乐; CapableOf:发出声音
sheet music | 乐谱 | ObjectUse:练琴; MadeUpOf:音符
glow stick | 荧光棒 | ObjectUse:应援; AtLocation:演唱会
""",
    "games": """
game controller | 游戏手柄 | ObjectUse:玩游戏; AtLocation:客厅
game console | 游戏机 | ObjectUse:玩游戏; AtLocation:客厅; HasProperty:贵的
mobile game | 手游 | AtLocation:手机; ObjectUse:打发时间; HasProperty:容易上瘾的
computer | 电脑 | ObjectUse:打游戏/办公; AtLocation:书桌
keyboard | 键盘 | ObjectUse:打字; AtLocation:书桌; MadeUpOf:按键
gamer | 玩家 | Desires:赢比赛; NotDesires:遇到猪队友; CapableOf:通宵打游戏
teammate | 队友 | CapableOf:一起上分; Desires:赢比赛
streamer | 主播 | CapableOf:直播; Desires:涨粉; AtLocation:直播间
live stream room | 直播间 | ObjectUse:看直播; AtLocation:手机
rank | 段位 | HasProperty:难上的; ObjectUse:显示水平
game character | 游戏角色 | CapableOf:放技能; HasProperty:帅气的
skin | 皮肤 | ObjectUse:装饰角色; HasProperty:好看的
gacha | 抽卡 | HasProperty:看运气的; ObjectUse:获得角色
internet cafe | 网吧 | ObjectUse:打游戏; AtLocation:街上
esports | 电竞 | HasProperty:刺激的; CapableOf:成为职业
VR headset | VR眼镜 | ObjectUse:玩VR游戏; AtLocation:客厅
board game | 桌游 | ObjectUse:朋友聚会; MadeUpOf:卡牌
playing cards | 扑克牌 | ObjectUse:打牌; MadeUpOf:硬纸
game account | 游戏账号 | ObjectUse:登录游戏; CapableOf:被盗
""",
    "travel": """
beach | 海滩 | AtLocation:海边; ObjectUse:晒太阳; HasProperty:漂亮的
sea | 大海 | HasProperty:蓝色的/广阔的; CapableOf:让人放松
mountain | 山 | ObjectUse:爬山; HasProperty:高的
tent | 帐篷 | ObjectUse:露营; AtLocation:营地
suitcase | 行李箱 | ObjectUse:装行李; AtLocation:机场
passport | 护照 | ObjectUse:出国; AtLocation:抽屉
plane ticket | 机票 | ObjectUse:坐飞机; HasProperty:贵的
airport | 机场 | ObjectUse:坐飞机; AtLocation:城市郊区
train | 火车 | CapableOf:载人; AtLocation:火车站; ObjectUse:出行
hotel | 酒店 | ObjectUse:住宿; AtLocation:景区附近
homestay | 民宿 | ObjectUse:住宿; HasProperty:温馨的; AtLocation:古镇
camera | 相机 | ObjectUse:拍照; AtLocation:包里
map | 地图 | ObjectUse:认路; AtLocation:手机
ancient town | 古镇 | HasProperty:古色古香的; AtLocation:江南
souvenir | 纪念品 | ObjectUse:留个纪念/送朋友; AtLocation:景区
sunscreen | 防晒霜 | ObjectUse:防晒; AtLocation:包里
tourist | 游客 | Desires:玩得开心; NotDesires:被坑; AtLocation:景区
scenic spot | 景区 | HasProperty:人多的; ObjectUse:游玩
postcard | 明信片 | ObjectUse:寄给朋友; MadeUpOf:硬纸
snow | 雪 | HasProperty:冷的/白色的; CapableOf:让人兴奋
""",
    "general": """
umbrella | 雨伞 | ObjectUse:挡雨; AtLocation:门口
basketball | 篮球 | ObjectUse:打球; AtLocation:球场
football | 足球 | ObjectUse:踢球; AtLocation:球场
office | 办公室 | ObjectUse:上班; AtLocation:写字楼
boss | 老板 | Desires:员工加班; CapableOf:发工资
exam | 考试 | HasProperty:让人紧张的; ObjectUse:检验学习
mobile phone | 手机 | ObjectUse:刷视频/打电话; AtLocation:口袋
rain | 雨 | CapableOf:淋湿衣服; HasProperty:凉的
""",
}

# ---------------------------------------------------------------------------
# Event flow: next_utterance (comment turn -> reply turn)
# ---------------------------------------------------------------------------
NEXT_UTTERANCE = """
有人做了一锅红烧肉 > 有人流口水了 有人问别人要菜谱 有人吃别人做的菜 有人在别人家蹭饭
有人发美食视频 > 有人流口水了 有人问别人要菜谱 有人跟着视频学做菜 有人点外卖
有人看吃播 > 有人流口水了 有人点外卖 有人吃夜宵
有人流口水了 > 有人点外卖 有人煮泡面
有人买披萨 > 有人和别人喝啤酒 有人吃撑了 有人开始减肥 有人看足球比赛
有人和别人一起吃火锅 > 有人吃辣面 有人和别人喝啤酒 有人吃撑了 有人去重庆旅游
有人点外卖 > 有人开始减肥 有人煮泡面
有人等外卖 > 有人煮泡面 有人流口水了
有人跟着视频学做菜 > 有人把菜烧糊了 有人尝试新菜谱
有人把菜烧糊了 > 有人点外卖 有人煮泡面 有人吃坏肚子了
有人尝试路边小吃 > 有人吃坏肚子了 有人烤串 有人剥小龙虾
有人吃辣面 > 有人吃坏肚子了 有人和别人一起吃火锅
有人烤蛋糕 > 有人给别人做生日蛋糕 有人把零食分给别人
有人给别人做生日蛋糕 > 有人吃别人做的菜 有人烤蛋糕
有人开始减肥 > 有人吃夜宵 有人去跑步
有人吃夜宵 > 有人开始减肥 有人加班
有人喝奶茶 > 有人开始减肥 有人排队吃网红店
有人排队吃网红店 > 有人觉得网红店很难吃 有人喝奶茶
有人觉得网红店很难吃 > 有人给别人做饭 有人去菜市场买菜
有人请别人吃饭 > 有人和别人一起吃火锅 有人去吃自助餐
有人给别人做饭 > 有人吃别人做的菜 有人在别人家蹭饭
有人去菜市场买菜 > 有人包饺子 有人给别人做饭
有人包饺子 > 有人吃别人做的菜
有人偷吃别人的零食 > 有人把零食分给别人
有人吃撑了 > 有人开始减肥
有人去吃自助餐 > 有人开始减肥
有人煮咖啡 > 有人加班
有人尝试新菜谱 > 有人把菜烧糊了 有人吃别人做的菜
有人吃榴莲 > 有人尝试路边小吃
有人烤串 > 有人和别人喝啤酒 有人剥小龙虾
有人和别人喝啤酒 > 有人看足球比赛 有人烤串
有人煮泡面 > 有人熬夜 有人通宵打游戏
有人问别人要菜谱 > 有人尝试新菜谱
有人吃别人做的菜 > 有人请别人吃饭
有人剥小龙虾 > 有人吃辣面
有人做早餐 > 有人煮咖啡
有人不吃饭 > 有人点外卖 有人开始减肥
有人在别人家蹭饭 > 有人吃别人做的菜

有人领养了一只猫 > 有人撸猫 有人给猫拍视频 有人又养了一只猫 有人对猫过敏
有人领养了一只狗 > 有人遛狗 有人训练狗狗
有人喂别人的猫 > 有人被猫抓了 有人撸猫
有人遛狗 > 有人在街上看到一只可爱的狗 有人给狗洗澡
有人撸猫 > 有人被猫抓了 有人刷猫咪视频
有人带猫去看病 > 有人的宠物去世了 有人给猫剪指甲
有人的猫把杯子打翻了 > 有人的狗把沙发咬坏了 有人的猫趴在键盘上睡觉
有人训练狗狗 > 有人给狗喂零食
有人给猫拍视频 > 有人刷猫咪视频 有人给宠物穿衣服
有人找到了走丢的狗 > 有人给狗喂零食
有人的宠物去世了 > 有人收养流浪猫 有人领养了一只狗
有人买猫粮 > 有人喂别人的猫
有人被猫抓了 > 有人给猫剪指甲 有人被自己的猫嫌弃
有人铲猫砂 > 有人领养了一只猫
有人养仓鼠 > 有人养鹦鹉 有人养金鱼
有人的狗把沙发咬坏了 > 有人训练狗狗 有人的狗半夜叫
有人带狗去公园 > 有人在街上看到一只可爱的狗
有人的猫趴在键盘上睡觉 > 有人撸猫 有人加班
有人喂流浪狗 > 有人收养流浪猫
有人被自己的猫嫌弃 > 有人买猫粮
有人又养了一只猫 > 有人铲猫砂
有人带小狗打疫苗 > 有人给狗喂零食
有人对猫过敏 > 有人养金鱼 有人刷猫咪视频
有人在街上看到一只可爱的狗 > 有人领养了一只狗
有人把宠物独自留在家 > 有人回家看到狗狗在门口等
有人回家看到狗狗在门口等 > 有人遛狗
有人教鹦鹉说话 > 有人给猫拍视频
有人的猫生了小猫 > 有人领养了一只猫
有人养金鱼 > 有人养仓鼠
有人给狗梳毛 > 有人给宠物穿衣服
有人的狗半夜叫 > 有人熬夜
有人刷猫咪视频 > 有人领养了一只猫 有人熬夜
有人给狗喂零食 > 有人训练狗狗
有人收养流浪猫 > 有人喂流浪狗

有人去听演唱会 > 有人见到了偶像 有人抢到演唱会门票
有人抢到演唱会门票 > 有人没抢到票
有人没抢到票 > 有人单曲循环一首歌
有人学吉他 > 有人弹尤克里里 有人给别人唱歌
有人弹钢琴 > 有人学看乐谱 有人练小提琴
有人给别人唱歌 > 有人夸别人唱得好听
有人和别人去唱K > 有人唱歌跑调
有人上班路上听歌 > 有人给别人推荐歌曲 有人买了一副耳机
有人听伤感的歌 > 有人听到一首老歌 有人单曲循环一首歌
有人翻唱一首歌 > 有人夸别人唱得好听 有人被一首歌洗脑了
有人发唱歌视频 > 有人夸别人唱得好听 有人翻唱一首歌
有人唱歌跑调 > 有人在浴室唱歌
有人自己写歌 > 有人加入乐队
有人加入乐队 > 有人学打鼓
有人上台表演 > 有人上台前很紧张
有人被一首歌洗脑了 > 有人学热门舞蹈
有人单曲循环一首歌 > 有人做歌单
有人给别人分享一首歌 > 有人单曲循环一首歌
有人学打鼓 > 有人把音乐开得很大声
有人练小提琴 > 有人上台表演
有人拿到签名 > 有人见到了偶像
有人做歌单 > 有人给别人分享一首歌
有人在浴室唱歌 > 有人和别人去唱K
有人去音乐节 > 有人去露营
有人跟着音乐跳舞 > 有人学热门舞蹈
有人听到一首老歌 > 有人玩小时候的游戏 有人给别人分享一首歌
有人买了一副耳机 > 有人上班路上听歌
有人弹尤克里里 > 有人在街头卖唱
有人在街头卖唱 > 有人夸别人唱得好听
有人给宝宝唱摇篮曲 > 有人在浴室唱歌
有人嗓子哑了 > 有人感冒了
有人把音乐开得很大声 > 有人的狗半夜叫
有人夸别人唱得好听 > 有人翻唱一首歌
有人给别人推荐歌曲 > 有人做歌单
有人赢了唱歌比赛 > 有人见到了偶像
有人边听歌边学习 > 有人复习考试
有人学看乐谱 > 有人弹钢琴

有人通宵打游戏 > 有人熬夜 有人上分了
有人赢了一局游戏 > 有人拿了五杀
有人输了一局游戏 > 有人遇到猪队友 有人卸载了游戏
有人和别人一起打游戏 > 有人被别人带飞 有人遇到猪队友 有人和网友组队
有人买了一款新游戏 > 有人卡关了
有人抽到稀有角色 > 有人抽卡一无所获 有人在游戏里充钱
有人抽卡一无所获 > 有人卸载了游戏
有人在游戏里充钱 > 有人抽到稀有角色
有人被别人带飞 > 有人赢了一局游戏
有人遇到猪队友 > 有人在游戏里骂别人
有人打通了一个难关 > 有人通关了游戏
有人卡关了 > 有人打通了一个难关
有人看游戏直播 > 有人直播打游戏 有人买了一款新游戏
有人直播打游戏 > 有人玩恐怖游戏
有人玩恐怖游戏 > 有人看游戏直播
有人上分了 > 有人输了一局游戏
有人的游戏账号被盗了 > 有人卸载了游戏
有人买了游戏机 > 有人买了一款新游戏
有人用手机玩游戏 > 有人上课偷偷打游戏
有人打游戏被爸妈发现了 > 有人卸载了游戏
有人玩小时候的游戏 > 有人听到一首老歌
有人在我的世界里盖房子 > 有人剪游戏视频
有人教别人玩游戏 > 有人被别人带飞
有人气得摔手柄 > 有人买了游戏机
有人通关了游戏 > 有人买了一款新游戏
有人等游戏更新 > 有人玩小时候的游戏
有人和网友组队 > 有人在游戏里骂别人
有人打牌 > 有人和家人玩Switch
有人剪游戏视频 > 有人直播打游戏
有人陪孩子玩游戏 > 有人和家人玩Switch
有人玩VR游戏头晕 > 有人坐过山车
有人的账号被封了 > 有人卸载了游戏
有人加入电竞战队 > 有人看电竞决赛
有人看电竞决赛 > 有人加入电竞战队
有人卸载了游戏 > 有人去跑步
有人收集全部成就 > 有人通关了游戏

有人去海边 > 有人看海 有人被晒伤了
有人一个人旅行 > 有人在陌生城市迷路了
有人做旅行攻略 > 有人去重庆旅游
有人收拾行李 > 有人弄丢了护照
有人在山顶看日出 > 有人发旅行视频
有人在陌生城市迷路了 > 有人在旅途中吃当地美食
有人在旅途中吃当地美食 > 有人尝试路边小吃 有人吃坏肚子了
有人去露营 > 有人烤串
有人和别人一起旅行 > 有人去游乐园 有人和别人去徒步
有人出国旅游 > 有人弄丢了护照
有人买纪念品 > 有人给别人寄明信片
有人住民宿 > 有人去古镇
有人自驾游 > 有人在草原骑马
有人坐夜车 > 有人旅行回来了
有人假期去景点人挤人 > 有人在景区被坑了
有人第一次看到雪 > 有人坐缆车
有人去重庆旅游 > 有人和别人一起吃火锅 有人吃辣面
有人弄丢了护照 > 有人在陌生城市迷路了
有人旅行回来了 > 有人发旅行视频
有人发旅行视频 > 有人辞职去旅行 有人做旅行攻略
有人坐缆车 > 有人在山顶看日出
有人在草原骑马 > 有人看星星
有人逛博物馆 > 有人去古镇
有人带爸妈去旅游 > 有人在景点拍照
有人坐过山车 > 有人玩VR游戏头晕
有人去别人的家乡玩 > 有人在旅途中吃当地美食
有人看星星 > 有人一个人旅行
有人在景区被坑了 > 有人旅行回来了
有人辞职去旅行 > 有人一个人旅行
有人给别人寄明信片 > 有人出国旅游
有人看海 > 有人去海边 有人辞职去旅行
有人被晒伤了 > 有人看海

有人加班 > 有人熬夜 有人工作压力很大
有人升职了 > 有人请别人吃饭 有人发工资了
有人找到新工作 > 有人升职了 有人请别人吃饭
有人复习考试 > 有人考试通过了 有人考试没考好
有人考试通过了 > 有人去吃自助餐
有人考试没考好 > 有人听伤感的歌
有人去跑步 > 有人和别人打篮球
有人和别人打篮球 > 有人看足球比赛
有人看足球比赛 > 有人和别人喝啤酒
有人晒太阳 > 有人撸猫
有人工作压力很大 > 有人辞职去旅行 有人刷猫咪视频
有人学英语 > 有人出国旅游
有人发工资了 > 有人买了游戏机 有人买了一副耳机
有人感冒了 > 有人不吃饭
"""

# Event flow: next_sentence (consecutive events inside one utterance)
NEXT_SENTENCE = """
有人点外卖 > 有人等外卖
有人去菜市场买菜 > 有人做了一锅红烧肉
有人做了一锅红烧肉 > 有人发美食视频
有人看吃播 > 有人煮泡面
有人烤蛋糕 > 有人发美食视频
有人吃夜宵 > 有人吃撑了
有人吃辣面 > 有人喝奶茶
有人煮咖啡 > 有人做早餐
有人剥小龙虾 > 有人和别人喝啤酒
有人去吃自助餐 > 有人吃撑了
有人吃坏肚子了 > 有人不吃饭
有人开始减肥 > 有人不吃饭
有人吃撑了 > 有人去跑步
有人跟着视频学做菜 > 有人包饺子
有人领养了一只猫 > 有人买猫粮
有人逗小猫玩 > 有人被猫抓了
有人给猫剪指甲 > 有人被猫抓了
有人遛狗 > 有人带狗去公园
有人给狗洗澡 > 有人给狗梳毛
有人的狗走丢了 > 有人找到了走丢的狗
有人养鹦鹉 > 有人教鹦鹉说话
有人把宠物独自留在家 > 有人的狗把沙发咬坏了
有人加班 > 有人把宠物独自留在家
有人给宠物穿衣服 > 有人给猫拍视频
有人撸猫 > 有人对猫过敏
有人收养流浪猫 > 有人带猫去看病
有人买猫粮 > 有人喂流浪狗
有人领养了一只狗 > 有人带小狗打疫苗
有人的猫生了小猫 > 有人逗小猫玩
有人抢到演唱会门票 > 有人去听演唱会
有人去听演唱会 > 有人嗓子哑了
有人和别人去唱K > 有人嗓子哑了
有人见到了偶像 > 有人拿到签名
有人上台前很紧张 > 有人唱歌跑调
有人学吉他 > 有人学看乐谱
有人自己写歌 > 有人发唱歌视频
有人翻唱一首歌 > 有人发唱歌视频
有人学热门舞蹈 > 有人发唱歌视频
有人被一首歌洗脑了 > 有人单曲循环一首歌
有人上台表演 > 有人赢了唱歌比赛
有人加入乐队 > 有人上台表演
有人去音乐节 > 有人跟着音乐跳舞
有人买了一款新游戏 > 有人通宵打游戏
有人通宵打游戏 > 有人打游戏被爸妈发现了
有人遇到猪队友 > 有人输了一局游戏
有人输了一局游戏 > 有人气得摔手柄
有人在游戏里骂别人 > 有人的账号被封了
有人抽卡一无所获 > 有人在游戏里充钱
有人卡关了 > 有人看游戏直播
有人赢了一局游戏 > 有人上分了
有人拿了五杀 > 有人剪游戏视频
有人上课偷偷打游戏 > 有人考试没考好
有人买了游戏机 > 有人和家人玩Switch
有人通关了游戏 > 有人收集全部成就
有人做旅行攻略 > 有人订机票
有人订机票 > 有人收拾行李
有人去海边 > 有人在海里游泳
有人在海里游泳 > 有人被晒伤了
有人去爬山 > 有人在山顶看日出
有人去露营 > 有人看星星
有人去游乐园 > 有人坐过山车
有人没赶上火车 > 有人坐夜车
有人在景点拍照 > 有人发旅行视频
有人出国旅游 > 有人买纪念品
有人去古镇 > 有人买纪念品
有人在山顶看日出 > 有人在景点拍照
有人一个人旅行 > 有人住民宿
有人自驾游 > 有人去露营
有人旅行回来了 > 有人开始减肥
有人和别人去徒步 > 有人去爬山
有人复习考试 > 有人熬夜
有人被雨淋了 > 有人感冒了
有人加班 > 有人吃夜宵
有人熬夜 > 有人感冒了
有人发工资了 > 有人请别人吃饭
有人工作压力很大 > 有人加班
有人学英语 > 有人复习考试
有人找到新工作 > 有人加班
有人晒太阳 > 有人看海
"""

# ---------------------------------------------------------------------------
# Concept flow: next_entity (phrase head -> phrase head or pure entity)
# ---------------------------------------------------------------------------
# Entities that are deliberately NOT phrase heads (places, brands, artists).
PURE_ENTITIES = ("重庆", "泰国", "周杰伦", "网易云音乐", "任天堂", "原神",
                 "英雄联盟", "三亚", "丽江", "哈尔滨")

NEXT_ENTITY = """
火锅 > 啤酒 辣椒 重庆
啤酒 > 烤串 小龙虾
披萨 > 啤酒 外卖
红烧肉 > 炒锅
奶茶 > 蛋糕 零食
蛋糕 > 奶茶 咖啡
饺子 > 面条
外卖 > 披萨 泡面
面条 > 辣椒
泡面 > 外卖
小龙虾 > 啤酒 夜市
烤串 > 啤酒 夜市
榴莲 > 超市 泰国
咖啡 > 蛋糕 办公室
辣椒 > 火锅
厨房 > 炒锅 厨师
炒锅 > 红烧肉
零食 > 奶茶 小鱼干
夜市 > 烤串 游客
餐厅 > 厨师 火锅
超市 > 零食 猫粮
厨师 > 厨房

猫 > 猫粮 猫砂 逗猫棒 猫爬架
狗 > 狗粮 狗绳
小猫 > 逗猫棒
小狗 > 狗粮
猫粮 > 猫 宠物店
狗粮 > 狗
猫砂 > 猫粮
狗绳 > 狗
逗猫棒 > 小猫
宠物店 > 猫粮 仓鼠 宠物衣服
宠物医院 > 猫
仓鼠 > 宠物店
鹦鹉 > 金鱼
金鱼 > 鱼缸
流浪猫 > 猫粮
宠物衣服 > 小狗
猫爬架 > 猫
小鱼干 > 猫

吉他 > 尤克里里 乐队
钢琴 > 乐谱
架子鼓 > 乐队
小提琴 > 钢琴
尤克里里 > 海滩
耳机 > 歌单
演唱会 > 演唱会门票 荧光棒 周杰伦
演唱会门票 > 演唱会
麦克风 > KTV
舞台 > 歌手
KTV > 麦克风 啤酒
偶像 > 演唱会
歌手 > 歌曲 舞台
乐队 > 音乐节 架子鼓
歌单 > 歌曲 网易云音乐
歌曲 > 歌单
音乐节 > 乐队 帐篷
音箱 > 歌曲
乐谱 > 钢琴
荧光棒 > 演唱会

游戏手柄 > 游戏机 任天堂
游戏机 > 游戏手柄
手游 > 抽卡 段位
电脑 > 键盘 网吧
键盘 > 猫
玩家 > 队友 段位
队友 > 玩家
主播 > 直播间
直播间 > 主播
段位 > 队友
游戏角色 > 皮肤
皮肤 > 游戏角色
抽卡 > 游戏角色 原神
网吧 > 泡面
电竞 > 主播 英雄联盟
VR眼镜 > 游戏机
桌游 > 扑克牌
扑克牌 > 啤酒
游戏账号 > 皮肤

海滩 > 大海 防晒霜 三亚
大海 > 海滩
山 > 帐篷
帐篷 > 山
行李箱 > 护照 相机
护照 > 机票
机票 > 机场 酒店
机场 > 行李箱
火车 > 泡面
酒店 > 民宿
民宿 > 古镇
相机 > 景区
地图 > 景区
古镇 > 明信片 丽江
纪念品 > 明信片
防晒霜 > 海滩
游客 > 景区 相机
景区 > 纪念品
雪 > 山 哈尔滨

雨伞 > 雨
篮球 > 足球
足球 > 啤酒
办公室 > 老板 电脑
老板 > 办公室
考试 > 咖啡
手机 > 手游 耳机
雨 > 雨伞
"""

# ---------------------------------------------------------------------------
# Emotion flows: emotion tail (xReact/oReact) -> cause / response intent tail
# ---------------------------------------------------------------------------
EMOTION_FLOWS = """
emotion_cause 开心 > 抢到门票 下班回家 天气好
emotion_cause 兴奋 > 买门票 办护照
emotion_cause 失望 > 手慢了 排队吃网红店
emotion_cause 难过 > 失恋了 到处找
emotion_cause 担心 > 猫不吃东西
emotion_cause 心疼 > 猫不吃东西
emotion_cause 生气 > 输了好几局 在游戏里骂人
emotion_cause 着急 > 起晚了
emotion_cause 后悔 > 没涂防晒霜
emotion_cause 难受 > 吃了不干净的东西 被雨淋了
emotion_cause 自豪 > 练习很久 失败了很多次
emotion_cause 满足 > 找到好店
emotion_cause 感动 > 爬了一夜山 下班回家
emotion_cause 烦躁 > 有很多工作
emotion_cause 紧张 > 面试 偷偷打游戏
emotion_cause 放松 > 去海边
emotion_cause 嘴馋 > 看到美食视频
emotion_cause 很累 > 加班到很晚
emotion_cause 疲惫 > 玩了好几天
emotion_cause 激动 > 连胜了好几局
emotion_cause 犯困 > 加班到很晚
emotion_cause 好笑 > 惹毛了猫
emotion_cause 期待 > 确定日期
emotion_cause 害怕 > 偷偷打游戏
emotion_cause 焦虑 > 有很多工作

intent_ask 好奇 > 求原唱 看照片 去听一听
intent_ask 嘴馋 > 要教程
intent_ask 惊艳 > 求原唱
intent_ask 着急 > 问路
intent_ask 烦躁 > 查攻略
intent_ask 羡慕 > 看照片
intent_ask 被萌到 > 给猫取名字
intent_ask 佩服 > 教他怎么过
intent_ask 惊讶 > 要教程
intent_ask 喜欢 > 求原唱
intent_ask 无聊 > 找人一起玩
intent_ask 担心 > 去医院

intent_console 难过 > 安慰他 一个人静静
intent_console 伤心 > 安慰他
intent_console 失望 > 下次努力
intent_console 着急 > 帮忙转发
intent_console 害怕 > 给他加油
intent_console 紧张 > 给他加油 深呼吸
intent_console 心疼 > 安慰他
intent_console 难受 > 多喝热水
intent_console 焦虑 > 放松一下
intent_console 后悔 > 下次努力
intent_console 生气 > 一个人静静
intent_console 委屈 > 安慰他
intent_console 懊恼 > 改签
intent_console 疲惫 > 好好睡一觉
intent_console 倒霉 > 下次努力

intent_describe 开心 > 晒截图 发朋友圈
intent_describe 满足 > 拍照发视频 吃饱了
intent_describe 兴奋 > 发朋友圈
intent_describe 自豪 > 晒截图 获得奖杯
intent_describe 激动 > 录屏保存
intent_describe 怀念 > 想起以前
intent_describe 很累 > 累坏了 腿酸
intent_describe 放松 > 心情变好
intent_describe 感动 > 哭了
intent_describe 惊讶 > 吓了一跳
intent_describe 过瘾 > 辣得流眼泪
intent_describe 上头 > 一直哼
intent_describe 治愈 > 刷到半夜

intent_opinion 羡慕 > 也想去 也想养猫
intent_opinion 被萌到 > 也想养猫
intent_opinion 惊艳 > 继续唱 多听几首
intent_opinion 嫌弃 > 离他远点
intent_opinion 生气 > 让他赔
intent_opinion 喜欢 > 加进歌单
intent_opinion 上头 > 单曲循环
intent_opinion 治愈 > 也想养猫
intent_opinion 佩服 > 多听几首
intent_opinion 好笑 > 钱白花了
intent_opinion 同情 > 钱白花了
intent_opinion 嘴馋 > 尝一口
intent_opinion 好奇 > 尝尝新口味

intent_advise 难受 > 去医院 吃药
intent_advise 犯困 > 补觉
intent_advise 很累 > 休息一下
intent_advise 生气 > 举报他
intent_advise 着急 > 改签 找客服
intent_advise 担心 > 早点回家
intent_advise 焦虑 > 辞职
intent_advise 无聊 > 打发时间
intent_advise 饥饿 > 点外卖
intent_advise 烦躁 > 一个人静静
intent_advise 紧张 > 多练练
intent_advise 失望 > 给差评
intent_advise 害怕 > 开着灯玩
intent_advise 后悔 > 投诉

intent_others 尴尬 > 多练练
intent_others 无奈 > 收拾干净
intent_others 倒霉 > 回家洗澡
intent_others 心虚 > 让他赔
intent_others 无聊 > 刷到半夜
intent_others 疲惫 > 没睡好
intent_others 不舍 > 时间多了
intent_others 轻松 > 时间多了
intent_others 愧疚 > 早点回家
intent_others 好笑 > 教训狗

emotion_intent 开心 > 再来一局 庆祝一下 请大家吃饭
emotion_intent 兴奋 > 跟着合唱 马上开玩
emotion_intent 满足 > 再来一碗
emotion_intent 自豪 > 感谢家人
emotion_intent 期待 > 第一时间玩
emotion_intent 激动 > 要签名
emotion_intent 放松 > 吹吹海风
emotion_intent 害怕 > 深呼吸
emotion_intent 失望 > 不玩了
emotion_intent 生气 > 投诉
emotion_intent 感动 > 抱抱狗狗
emotion_intent 嘴馋 > 马上吃到
emotion_intent 饥饿 > 填饱肚子
emotion_intent 很累 > 好好睡一觉
emotion_intent 羡慕 > 让他请客
emotion_intent 痛快 > 聊聊天
emotion_intent 刺激 > 再坐一次
emotion_intent 自由 > 看看世界
emotion_intent 惊喜 > 分享旅途
emotion_intent 幸福 > 哄宝宝睡觉
emotion_intent 坚定 > 少吃一点
emotion_intent 难过 > 好好安葬
emotion_intent 好奇 > 回家试试
"""

EMOTION_TYPES = ("emotion_cause", "emotion_intent", "intent_ask",
                 "intent_console", "intent_describe", "intent_opinion",
                 "intent_advise", "intent_others")
CAUSE_RELS = {"xNeed", "isAfter"}
INTENT_RELS = {"xEffect", "xWant", "xIntent", "isBefore", "oReact", "oWant"}
EMOTION_SRC_RELS = {"xReact", "oReact"}


# ---------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------
def _lines(block):
    return [ln.strip() for ln in block.strip().splitlines() if ln.strip()]


def parse_heads(blocks, allowed_rels):
    """Return list of (english, chinese, [(rel, tail), ...])."""
    out = []
    for theme in blocks:
        for ln in _lines(blocks[theme]):
            en, zh, rels = [p.strip() for p in ln.split("|")]
            triples = []
            for part in rels.split(";"):
                rel, tails = part.strip().split(":")
                rel = rel.strip()
                assert rel in allowed_rels, (zh, rel)
                for tail in tails.split("/"):
                    triples.append((rel, tail.strip()))
            out.append((en, zh, triples))
    return out


def parse_flow(block):
    edges = []
    for ln in _lines(block):
        src, tgts = ln.split(">")
        for t in tgts.split():
            edges.append((src.strip(), t.strip()))
    return edges


def replace_persons(en):
    return (en.replace("PersonX", "someone")
              .replace("PersonY", "someone else")
              .replace("___", "something"))


def check_field(s):
    assert s and "," not in s and '"' not in s and "\t" not in s and "\n" not in s and "\r" not in s and "，" not in s, repr(s)


# ---------------------------------------------------------------------------
def build():
    events = parse_heads(EVENT_HEADS, EVENT_RELATIONS)
    phrases = parse_heads(PHRASE_HEADS, PHRASE_RELATIONS)

    # --- head sanity -------------------------------------------------------
    all_zh = [zh for _, zh, _ in events + phrases]
    all_en = [en for en, _, _ in events + phrases]
    assert len(set(all_zh)) == len(all_zh), "duplicate Chinese head"
    assert len(set(all_en)) == len(all_en), "duplicate English head"
    for en, zh, triples in events:
        assert en.startswith("PersonX"), en
        assert zh.startswith("有人"), zh
        rels = {r for r, _ in triples}
        assert 4 <= len(triples) <= 8 and len(rels) >= 4, (zh, len(triples), rels)
    for en, zh, triples in phrases:
        assert 2 <= len(triples) <= 4, (zh, len(triples))

    # --- triples ------------------------------------------------------------
    triples_out = []
    seen = set()
    for _, zh, triples in events + phrases:
        for rel, tail in triples:
            key = (zh, rel, tail)
            assert key not in seen, key
            assert tail and tail.lower() != "none" and 2 <= len(tail) <= 10, key
            seen.add(key)
            triples_out.append(key)
    tail_rels = {}
    for _, rel, tail in triples_out:
        tail_rels.setdefault(tail, set()).add(rel)

    event_zh = {zh for _, zh, _ in events}
    phrase_zh = {zh for _, zh, _ in phrases}

    # --- flows -------------------------------------------------------------
    edges = OrderedDict()  # (src, tgt) -> type

    def add(src, tgt, etype):
        assert src != tgt, (src, tgt, etype)
        assert (src, tgt) not in edges, ("pair reused", src, tgt, etype, edges.get((src, tgt)))
        edges[(src, tgt)] = etype

    for s, t in parse_flow(NEXT_UTTERANCE):
        assert s in event_zh and t in event_zh, (s, t)
        add(s, t, "next_utterance")
    for s, t in parse_flow(NEXT_SENTENCE):
        assert s in event_zh and t in event_zh, (s, t)
        add(s, t, "next_sentence")
    for s, t in parse_flow(NEXT_ENTITY):
        assert s in phrase_zh, s
        assert t in phrase_zh or t in PURE_ENTITIES, t
        add(s, t, "next_entity")
    for ln in _lines(EMOTION_FLOWS):
        etype, rest = ln.split(None, 1)
        assert etype in EMOTION_TYPES, etype
        for s, t in parse_flow(rest):
            assert tail_rels.get(s, set()) & EMOTION_SRC_RELS, ("not an emotion tail", s)
            need = CAUSE_RELS if etype == "emotion_cause" else INTENT_RELS
            assert tail_rels.get(t, set()) & need, ("bad target", etype, s, t)
            add(s, t, etype)

    rng = random.Random(0)
    rows = sorted((etype, s, t) for (s, t), etype in edges.items())
    flow_out = []
    for etype, s, t in rows:
        # skewed positive integer weight in 1..60
        w = 1 + int(59 * rng.random() ** 3)
        flow_out.append((s, t, etype, w))
    return events, phrases, triples_out, flow_out


def write(events, phrases, triples_out, flow_out):
    def write_csv(path, heads):
        with open(path, "w", encoding="utf-8-sig", newline="") as f:
            f.write(",head,head_replaced,head_translated\n")
            for i, (en, zh, _) in enumerate(heads):
                rep = replace_persons(en)
                for fld in (en, rep, zh):
                    check_field(fld)
                f.write(f"{i},{en},{rep},{zh}\n")

    write_csv(os.path.join(OUT_DIR, "head_shortSentence.csv"), events)
    write_csv(os.path.join(OUT_DIR, "head_phrase.csv"), phrases)

    with open(os.path.join(OUT_DIR, "ATOMIC_Chinese.tsv"), "w",
              encoding="utf-8", newline="") as f:
        f.write("\thead\trelation\ttail\n")
        for i, (h, r, t) in enumerate(triples_out):
            for fld in (h, r, t):
                check_field(fld)
            f.write(f"{i}\t{h}\t{r}\t{t}\n")

    with open(os.path.join(OUT_DIR, "flow_edges.tsv"), "w",
              encoding="utf-8", newline="") as f:
        f.write("source\ttarget\ttype\tweight\n")
        for s, t, etype, w in flow_out:
            for fld in (s, t):
                check_field(fld)
            f.write(f"{s}\t{t}\t{etype}\t{w:d}\n")


def report(events, phrases, triples_out, flow_out):
    from collections import Counter
    print(f"event heads (head_shortSentence.csv): {len(events)}")
    for theme, heads in EVENT_HEADS.items():
        print(f"  {theme:<8} {len(_lines(heads))}")
    print(f"phrase heads (head_phrase.csv): {len(phrases)}")
    event_zh = {zh for _, zh, _ in events}
    n_ev = sum(1 for h, _, _ in triples_out if h in event_zh)
    print(f"triples (ATOMIC_Chinese.tsv): {len(triples_out)} (event {n_ev}, phrase {len(triples_out) - n_ev})")
    rc = Counter(r for _, r, _ in triples_out)
    for r in EVENT_RELATIONS + PHRASE_RELATIONS:
        print(f"  {r:<12} {rc[r]}")
    print(f"flow edges (flow_edges.tsv): {len(flow_out)}")
    tc = Counter(e for _, _, e, _ in flow_out)
    for t in sorted(tc):
        print(f"  {t:<16} {tc[t]}")
    print(f"  emotion-family total: {sum(tc[t] for t in EMOTION_TYPES)}")
    pure = sum(1 for _, t, e, _ in flow_out if e == "next_entity" and t in PURE_ENTITIES)
    print(f"  next_entity edges to pure entities: {pure}")


if __name__ == "__main__":
    ev, ph, tr, fl = build()
    write(ev, ph, tr, fl)
    report(ev, ph, tr, fl)
